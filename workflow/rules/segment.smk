rule segment:
    """Label nuclei with Voronoi-Otsu labeling."""
    input:
        result("background.tif"),
    output:
        result("labels.tif"),
    log:
        log_path("segment"),
    benchmark:
        benchmark_path("segment")
    conda:
        "../../envs/nuclei3d.yaml"
    resources:
        **STAGE_RESOURCES,
    params:
        spot_sigma_um=config["segment"]["spot_sigma_um"],
        outline_sigma_um=config["segment"]["outline_sigma_um"],
        code=code_fingerprint("segment", "io"),
    script:
        "../../scripts/segment.py"
