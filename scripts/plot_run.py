"""Rule plot_run: the run's figures for the report (nuclei3d.plots)."""

import pandas as pd

from nuclei3d import io
from nuclei3d.job import start_job
from nuclei3d.plots import plot_depth_profiles, plot_nuclei, plot_volumes

start_job(snakemake)
profiles = pd.concat(map(pd.read_csv, snakemake.input.profiles), ignore_index=True)
figures = {
    snakemake.output.nuclei: plot_nuclei(pd.read_csv(snakemake.input.summary)),
    snakemake.output.volumes: plot_volumes(pd.read_csv(snakemake.input.statistics)),
    snakemake.output.depth: plot_depth_profiles(profiles),
}
for path, figure in figures.items():
    with io.atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
