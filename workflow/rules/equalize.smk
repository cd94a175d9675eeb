for batch in BATCHES:

    rule:
        """Scale every z slice so its mean equals the stack mean (depth decay); write
        the slice means before and after (for the intensity-depth plot)."""
        name:
            f"equalize_{batch}"
        input:
            resampled=batch_paths(batch, "resampled.tif"),
        output:
            equalized=batch_paths(batch, "equalized.tif"),
            profile=batch_paths(batch, "depth_profile.csv"),
        log:
            batch_log("equalize", batch),
        group:
            "stages"
        conda:
            ENV
        resources:
            **stage_resources("equalize"),
        params:
            stage="equalize",
            stacks=per_stack(batch, stack_params(**config["equalize"])),
            code=code_fingerprint("equalize", "io"),
        script:
            STAGE_SCRIPT
