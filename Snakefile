# 3D nuclei segmentation of microscopy stacks with pyclesperanto-prototype.
# Stages: resample -> equalize -> background -> segment -> overlay, measure.
# See README.md; every config key is explained in config/README.md.
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"


# The image `--sdm apptainer` runs every rule in (config `container`, built from
# envs/nuclei3d.def); every rule also has `conda:` (`--sdm conda`).
if config["container"]:

    container: config["container"]


# Every other rule file: the stages (each adds its per-stack output to
# STAGE_OUTPUTS), demo data, validation, figures, the sweep's ranking.
for rules in sorted(Path(workflow.basedir, "workflow/rules").glob("*.smk")):
    if rules.name != "common.smk":

        include: rules


rule all:
    input:
        every_stack(*STAGE_OUTPUTS.values()),
        f"{RESULTS}/label_statistics.csv",
        f"{RESULTS}/summary.csv",
        [f"{RESULTS}/plots/{stem}.png" for stem, _ in FIGURES.values()],
        [f"{RESULTS}/validation.csv"] if ANNOTATED else [],


# One target per per-stack stage, named after it: that stage's outputs for every
# stack, with what they need (`snakemake --cores N segment`).
for stage, output in STAGE_OUTPUTS.items():

    rule:
        name:
            stage
        input:
            every_stack(output),
        localrule: True


rule completed:
    """The per-stack outputs of every stack but those the last run lost
    (failed_stacks.tsv): `snakemake --report report.html completed`."""
    input:
        every_stack("overlay", of=[s for s in samples.index if s not in FAILED_SAMPLES]),
        every_stack(
            "validation.csv", of=[s for s in ANNOTATED if s not in FAILED_SAMPLES]
        ),


rule sweep:
    """Target of the parameter sweep: `snakemake --cores N sweep`."""
    input:
        f"{SWEEP}/ranking.csv",
        f"{SWEEP}/best_parameters.yaml",
