rule resample:
    """Resample a stack to isotropic voxels of resample.target_voxel_size_um."""
    input:
        image=image_of,
    output:
        result("resampled.tif"),
    log:
        log_path("resample"),
    benchmark:
        benchmark_path("resample")
    conda:
        "../../envs/nuclei3d.yaml"
    resources:
        **STAGE_RESOURCES,
    params:
        image=image_path,
        channel=channel_of,
        target_voxel_size_um=config["resample"]["target_voxel_size_um"],
        voxel_size_um=sheet_voxel_size,
        default_voxel_size_um=config["default_voxel_size_um"],
        code=code_fingerprint("resample", "io"),
    script:
        "../../scripts/resample.py"
