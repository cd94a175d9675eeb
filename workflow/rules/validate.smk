rule validate:
    """Score a stack's labels against its ground truth (IoU 0.5 and 0.75)."""
    input:
        labels=result("labels.tif"),
        truth=ground_truth_of,
    output:
        result("validation.csv"),
    log:
        log_path("validate"),
    params:
        stacks=lambda wildcards: [dict(sample=wildcards.sample)],
        code=code_fingerprint("validate", "io"),
    run:
        run_job(
            nuclei3d.validate.run_stage,
            rule,
            input,
            output,
            params,
            log,
            config,
            gpu=False,
        )


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
    run:
        run_task(
            nuclei3d.validate.collect_job,
            rule,
            log,
            tables=list(input),
            output=output[0],
        )
