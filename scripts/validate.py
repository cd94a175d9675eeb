"""Rule validate: score labels against ground truth (nuclei3d.validate)."""

import pandas as pd

from nuclei3d import io
from nuclei3d.job import start_job
from nuclei3d.validate import score_segmentation, to_grid

log = start_job(snakemake)
labels, _ = io.read_stack(snakemake.input.labels)
truth, _ = io.read_stack(snakemake.input.truth)
scores = score_segmentation(to_grid(truth, labels.shape), labels)
log.info("%s", scores)
row = pd.DataFrame([{"sample": snakemake.wildcards.sample, **scores}])
io.write_table(snakemake.output[0], row)
