rule validate:
    """Score a stack's labels against its ground truth (IoU 0.5 and 0.75)."""
    input:
        labels=result("labels.tif"),
        truth=ground_truth_of,
    output:
        result("validation.csv"),
    log:
        log_path("validate"),
    benchmark:
        benchmark_path("validate")
    conda:
        "../../envs/nuclei3d.yaml"
    params:
        code=code_fingerprint("validate", "io"),
    script:
        "../../scripts/validate.py"


rule collect_validation:
    """Validation scores of every annotated stack in one table."""
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
    benchmark:
        f"{RESULTS}/benchmarks/collect_validation.tsv"
    conda:
        "../../envs/nuclei3d.yaml"
    script:
        "../../scripts/collect_validation.py"
