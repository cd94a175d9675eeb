# Stacks with ground truth, by batch: each batch's validation is one job.
ANNOTATED_BATCHES = {
    batch: [sample for sample in members if sample in ANNOTATED]
    for batch, members in BATCHES.items()
    if any(sample in ANNOTATED for sample in members)
}

for batch, members in ANNOTATED_BATCHES.items():

    rule:
        """Score a stack's labels against its ground truth (IoU 0.5 and 0.75)."""
        name:
            f"validate_{batch}"
        input:
            labels=[f"{RESULTS}/{sample}/labels.tif" for sample in members],
            truth=[samples.at[sample, "ground_truth"] for sample in members],
        output:
            [f"{RESULTS}/{sample}/validation.csv" for sample in members],
        log:
            batch_log("validate", batch),
        group:
            "stages"
        conda:
            ENV
        resources:
            **stage_resources("validate", gpu=False),
        params:
            stage="validate",
            stacks=[dict(sample=sample) for sample in members],
            code=code_fingerprint("validate", "io"),
        script:
            STAGE_SCRIPT


# Validation scores of every annotated stack in one table.
rule collect_validation:
    input:
        expand(result("validation.csv"), sample=ANNOTATED),
    output:
        report(
            f"{RESULTS}/validation.csv",
            caption="../report/validation.rst",
            category="Validation",
        ),
    log:
        f"{RESULTS}/logs/collect_validation.log",
    localrule: True
    conda:
        ENV
    script:
        "../../scripts/collect_validation.py"
