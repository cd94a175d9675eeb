for batch in BATCHES:

    rule:
        """Subtract the background with a box top-hat of background.radius_um."""
        name:
            f"background_{batch}"
        input:
            equalized=batch_paths(batch, "equalized.tif"),
        output:
            batch_paths(batch, "background.tif"),
        log:
            batch_log("background", batch),
        group:
            "stages"
        conda:
            ENV
        resources:
            **stage_resources("background"),
        params:
            stage="background",
            stacks=per_stack(batch, stack_params(**config["background"])),
            code=code_fingerprint("background", "io"),
        script:
            STAGE_SCRIPT
