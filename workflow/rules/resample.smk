# One job per stack, or per batch of stacks (`stacks_per_job`; common.smk: Unit).
for unit in UNITS:

    rule:
        """Resample a stack to isotropic voxels of resample.target_voxel_size_um."""
        name:
            unit.rule("resample")
        input:
            image=unit.images(),
        output:
            unit.paths("resampled.tif"),
        log:
            unit.log("resample"),
        resources:
            **STAGE_RESOURCES,
        params:
            stacks=unit.each(resample_params),
            code=code_fingerprint("resample", "io", "formats", "slabs"),
        run:
            run_job(
                nuclei3d.resample.run_stage,
                rule,
                input,
                output,
                params,
                log,
                config,
            )
