for unit in UNITS:

    rule:
        """Per-nucleus statistics of one stack (positions and sizes in µm), on the CPU."""
        name:
            unit.rule("measure")
        input:
            labels=unit.paths("labels.tif"),
            intensity=unit.paths("resampled.tif"),
        output:
            unit.paths("statistics.csv"),
        log:
            unit.log("measure"),
        resources:
            **STAGE_RESOURCES,
        params:
            stacks=unit.each(stack_params(parameter_set=PARAMETER_SET["id"])),
            code=code_fingerprint("measure", "io", "slabs"),
        run:
            run_job(
                nuclei3d.measure.run_stage,
                rule,
                input,
                output,
                params,
                log,
                config,
                gpu=False,
            )


rule collect_statistics:
    """All nuclei of the run in one table, and a per-stack summary."""
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
    params:
        samples=samples.index.tolist(),
        code=code_fingerprint("measure"),
    run:
        run_task(
            nuclei3d.measure.collect_job,
            rule,
            log,
            tables=dict(zip(params.samples, input)),
            **dict(output.items()),
        )
