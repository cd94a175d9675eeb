rule measure:
    """Per-nucleus statistics of one stack (positions and sizes in µm), on the CPU."""
    input:
        labels=result("labels.tif"),
        intensity=result("resampled.tif"),
    output:
        result("statistics.csv"),
    log:
        log_path("measure"),
    benchmark:
        benchmark_path("measure")
    conda:
        "../../envs/nuclei3d.yaml"
    resources:
        **STAGE_RESOURCES,
    params:
        code=code_fingerprint("measure", "io"),
    script:
        "../../scripts/measure.py"


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
    benchmark:
        f"{RESULTS}/benchmarks/collect_statistics.tsv"
    conda:
        "../../envs/nuclei3d.yaml"
    params:
        samples=samples.index.tolist(),
        code=code_fingerprint("measure"),
    script:
        "../../scripts/collect_statistics.py"
