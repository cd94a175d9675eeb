"""Rule collect_validation: every stack's scores (nuclei3d.validate.collect_job)."""

from nuclei3d.job import start_job
from nuclei3d.validate import collect_job

collect_job(list(snakemake.input), snakemake.output[0], log=start_job(snakemake))
