STAGE_OUTPUTS["measure"] = "statistics.csv"


for unit in units("measure"):

    rule:
        """Per-nucleus statistics of one stack (positions and sizes in µm), on the CPU."""
        name:
            unit.rule("measure")
        input:
            labels=unit.needs("segment", "labels.tif"),
            intensity=unit.needs("resample", "resampled.tif"),
        output:
            unit.files("measure", "statistics.csv"),
        log:
            unit.log("measure"),
        group:
            unit.group
        conda:
            ENV
        resources:
            **stage_resources("measure", gpu=False),
        params:
            stage="measure",
            stacks=partial(measure_stacks, unit),
            code=code_fingerprint("measure", "io", "slabs"),
        script:
            STAGE_SCRIPT


# All nuclei of the run in one table, and a per-stack summary.
rule collect_statistics:
    input:
        every_stack("statistics.csv"),
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
