# Every per-stack stage: one rule per batch of stacks (common.smk: BATCHES), all
# running scripts/stage.py; `group` puts a batch's stages into one SLURM job.
for batch in BATCHES:

    rule:
        """Resample a stack to isotropic voxels of resample.target_voxel_size_um."""
        name:
            f"resample_{batch}"
        input:
            image=batch_images(batch),
        output:
            batch_paths(batch, "resampled.tif"),
        log:
            batch_log("resample", batch),
        group:
            "stages"
        conda:
            ENV
        resources:
            **stage_resources("resample"),
        params:
            stage="resample",
            stacks=per_stack(batch, resample_params),
            code=code_fingerprint("resample", "io", "formats", "slabs"),
        script:
            STAGE_SCRIPT
