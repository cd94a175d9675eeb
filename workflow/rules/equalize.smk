rule equalize:
    """Scale every z slice so its mean equals the stack mean (depth decay)."""
    input:
        result("resampled.tif"),
    output:
        result("equalized.tif"),
    log:
        log_path("equalize"),
    benchmark:
        benchmark_path("equalize")
    conda:
        "../../envs/nuclei3d.yaml"
    resources:
        **STAGE_RESOURCES,
    params:
        enabled=config["equalize"]["enabled"],
        code=code_fingerprint("equalize", "io"),
    script:
        "../../scripts/equalize.py"
