for unit in units("validate"):

    rule:
        """Score a stack's labels against its ground truth (IoU 0.5 and 0.75)."""
        name:
            unit.rule("validate")
        input:
            labels=unit.needs("segment", "labels.tif"),
            truth=[samples.at[sample, "ground_truth"] for sample in unit.samples],
        output:
            unit.files("validate", "validation.csv"),
        log:
            unit.log("validate"),
        group:
            unit.group
        conda:
            ENV
        resources:
            **stage_resources("validate", gpu=False),
        params:
            stage="validate",
            stacks=unit.stacks(None),
            code=code_fingerprint("validate", "io"),
        script:
            STAGE_SCRIPT


# Validation scores of every annotated stack in one table.
rule collect_validation:
    input:
        every_stack("validation.csv", of=ANNOTATED),
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
