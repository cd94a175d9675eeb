# 3D nuclei segmentation of microscopy stacks with pyclesperanto-prototype.
# Stages: resample -> equalize -> background -> segment -> overlay, measure.
# See README.md; every config key is explained in config/README.md.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/resample.smk"
include: "workflow/rules/equalize.smk"
include: "workflow/rules/background.smk"
include: "workflow/rules/segment.smk"
include: "workflow/rules/overlay.smk"
include: "workflow/rules/ome_zarr.smk"
include: "workflow/rules/measure.smk"
include: "workflow/rules/validate.smk"
include: "workflow/rules/plots.smk"
include: "workflow/rules/sweep.smk"


rule all:
    input:
        expand(result("overlay"), sample=samples.index),
        f"{RESULTS}/label_statistics.csv",
        f"{RESULTS}/summary.csv",
        [f"{RESULTS}/plots/{stem}.png" for stem, _ in FIGURES.values()],
        [f"{RESULTS}/validation.csv"] if ANNOTATED else [],
        (
            expand(result("segmentation.ome.zarr"), sample=samples.index)
            if config["ome_zarr"]
            else []
        ),


# One target per per-stack stage, named after it: that stage's outputs for every
# stack, with what they need (`snakemake --cores N segment`).
for stage, output in STAGE_OUTPUTS.items():

    rule:
        name:
            stage
        input:
            expand(result(output), sample=samples.index),
        localrule: True


rule completed:
    """The per-stack outputs of every stack but those the last run lost
    (failed_stacks.tsv): `snakemake --report report.html completed`."""
    input:
        expand(
            result("overlay"),
            sample=[s for s in samples.index if s not in FAILED_SAMPLES],
        ),
        expand(
            result("validation.csv"),
            sample=[s for s in ANNOTATED if s not in FAILED_SAMPLES],
        ),


rule sweep:
    """Target of the parameter sweep: `snakemake --cores N sweep`."""
    input:
        f"{SWEEP}/ranking.csv",
        f"{SWEEP}/best_parameters.yaml",
