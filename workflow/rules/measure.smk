for batch in BATCHES:

    rule:
        """Per-nucleus statistics of one stack (positions and sizes in µm), on the CPU."""
        name:
            f"measure_{batch}"
        input:
            labels=batch_paths(batch, "labels.tif"),
            intensity=batch_paths(batch, "resampled.tif"),
        output:
            batch_paths(batch, "statistics.csv"),
        log:
            batch_log("measure", batch),
        group:
            "stages"
        conda:
            ENV
        resources:
            **stage_resources("measure", gpu=False),
        params:
            stage="measure",
            stacks=per_stack(batch, stack_params(parameter_set=PARAMETER_SET["id"])),
            code=code_fingerprint("measure", "io", "slabs"),
        script:
            STAGE_SCRIPT


# All nuclei of the run in one table, and a per-stack summary.
rule collect_statistics:
    input:
        expand(result("statistics.csv"), sample=samples.index),
    output:
        label_statistics=report(
            f"{RESULTS}/label_statistics.csv",
            caption="../report/label_statistics.rst",
            category="Statistics",
        ),
        summary=report(
            f"{RESULTS}/summary.csv",
            caption="../report/summary.rst",
            category="Statistics",
        ),
    log:
        f"{RESULTS}/logs/collect_statistics.log",
    localrule: True
    conda:
        ENV
    params:
        samples=samples.index.tolist(),
        code=code_fingerprint("measure"),
    script:
        "../../scripts/collect_statistics.py"
