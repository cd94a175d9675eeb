for unit in UNITS:

    rule:
        """Scale every z slice so its mean equals the stack mean (depth decay); write
        the slice means before and after (for the intensity-depth plot)."""
        name:
            unit.rule("equalize")
        input:
            resampled=unit.paths("resampled.tif"),
        output:
            equalized=unit.paths("equalized.tif"),
            profile=unit.paths("depth_profile.csv"),
        log:
            unit.log("equalize"),
        resources:
            **STAGE_RESOURCES,
        params:
            stacks=unit.each(stack_params(enabled=config["equalize"]["enabled"])),
            code=code_fingerprint("equalize", "io"),
        run:
            run_job(
                nuclei3d.equalize.run_stage,
                rule,
                input,
                output,
                params,
                log,
                config,
            )
