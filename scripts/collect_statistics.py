"""Rule collect_statistics: the run's tables (nuclei3d.measure.collect_job)."""

from nuclei3d.job import start_job
from nuclei3d.measure import collect_job

collect_job(
    dict(zip(snakemake.params.samples, snakemake.input, strict=True)),
    **dict(snakemake.output.items()),
    log=start_job(snakemake),
)
