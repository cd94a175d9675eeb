rule background:
    """Subtract the background with a box top-hat of background.radius_um."""
    input:
        result("equalized.tif"),
    output:
        result("background.tif"),
    log:
        log_path("background"),
    benchmark:
        benchmark_path("background")
    conda:
        "../../envs/nuclei3d.yaml"
    resources:
        **STAGE_RESOURCES,
    params:
        radius_um=config["background"]["radius_um"],
        code=code_fingerprint("background", "io"),
    script:
        "../../scripts/background.py"
