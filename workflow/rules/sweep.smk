# Parameter sweep (`snakemake --cores N sweep`): the stage rules run every
# parameter set on the annotated stacks (common.smk: SWEEP_UNITS); this ranks the
# sets by mean F1 over those stacks and names the best.
rule rank_sweep:
    input:
        [
            f"{sweep_folder(combination, 'validate')}/{sample}/validation.csv"
            for combination in COMBINATIONS
            for sample in ANNOTATED
        ],
    output:
        ranking=report(
            f"{SWEEP}/ranking.csv",
            caption="../report/ranking.rst",
            category="Parameter sweep",
        ),
        best=f"{SWEEP}/best_parameters.yaml",
    log:
        f"{SWEEP}/logs/rank_sweep.log",
    localrule: True
    conda:
        ENV
    params:
        combinations=[
            combination for combination in COMBINATIONS for sample in ANNOTATED
        ],
        code=code_fingerprint("sweep"),
    script:
        "../../scripts/rank_sweep.py"
