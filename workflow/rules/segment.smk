for batch in BATCHES:

    rule:
        """Voronoi-Otsu labeling (segment.spot_sigma_um, segment.outline_sigma_um)."""
        name:
            f"segment_{batch}"
        input:
            background=batch_paths(batch, "background.tif"),
        output:
            batch_paths(batch, "labels.tif"),
        log:
            batch_log("segment", batch),
        group:
            "stages"
        conda:
            ENV
        resources:
            **stage_resources("segment"),
        params:
            stage="segment",
            stacks=per_stack(batch, stack_params(**config["segment"])),
            code=code_fingerprint("segment", "io"),
        script:
            STAGE_SCRIPT
