"""Rule collect_statistics: the run's tables (nuclei3d.measure.collect_statistics)."""

import pandas as pd

from nuclei3d import io
from nuclei3d.job import start_job
from nuclei3d.measure import collect_statistics

start_job(snakemake)
tables = {
    sample: pd.read_csv(path)
    for sample, path in zip(snakemake.params.samples, snakemake.input, strict=True)
}
rows, summary = collect_statistics(tables)
io.write_table(snakemake.output.label_statistics, rows)
io.write_table(snakemake.output.summary, summary)
