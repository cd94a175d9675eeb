rule overlay:
    """PNGs for a person: outlines over intensity every n z slices, projections."""
    input:
        intensity=result("resampled.tif"),
        labels=result("labels.tif"),
    output:
        report(
            directory(result("overlay")),
            patterns=["{name}.png"],
            caption="../report/overlay.rst",
            category="Overlays",
            subcategory="{sample}",
        ),
    log:
        log_path("overlay"),
    benchmark:
        benchmark_path("overlay")
    conda:
        "../../envs/nuclei3d.yaml"
    resources:
        **STAGE_RESOURCES,
    params:
        every_n_slices=config["overlay"]["every_n_slices"],
        code=code_fingerprint("overlay", "io"),
    script:
        "../../scripts/overlay.py"
