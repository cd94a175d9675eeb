"""Rules plot_*: one figure of the run (nuclei3d.plots.plot_job)."""

from nuclei3d.job import start_job
from nuclei3d.plots import plot_job

plot_job(
    snakemake.params.figure,
    list(snakemake.input),
    snakemake.output[0],
    log=start_job(snakemake),
)
