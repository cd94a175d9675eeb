"""Rule collect_validation: one validation table for the run."""

import pandas as pd

from nuclei3d import io
from nuclei3d.job import start_job

start_job(snakemake)
table = pd.concat([pd.read_csv(path) for path in snakemake.input], ignore_index=True)
io.write_table(snakemake.output[0], table)
