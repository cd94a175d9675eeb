"""Rule rank_sweep: parameter sets by mean F1 (nuclei3d.sweep.rank_parameter_sets)."""

import pandas as pd
import yaml

from nuclei3d import io
from nuclei3d.job import start_job
from nuclei3d.sweep import SWEPT, rank_parameter_sets

log = start_job(snakemake)
rows = [
    pd.read_csv(path).assign(**combination)
    for path, combination in zip(
        snakemake.input, snakemake.params.combinations, strict=True
    )
]
ranking = rank_parameter_sets(pd.concat(rows, ignore_index=True))
io.write_table(snakemake.output.ranking, ranking)
best = ranking.iloc[0]
sections = {}
for section, key, column in SWEPT:
    value = best[column]
    sections.setdefault(section, {})[key] = (
        value.item() if hasattr(value, "item") else value
    )
log.info("best parameters (mean f1_iou50 %.3f): %s", best["f1_iou50"], sections)
with io.atomic_path(snakemake.output.best) as tmp:
    tmp.write_text(
        f"# Best of {len(ranking)} parameter sets by mean F1 at IoU 0.5 "
        f"({best['f1_iou50']:.3f} over {best['stacks']} stacks); paste into config.\n"
        + yaml.safe_dump(sections, sort_keys=False)
    )
