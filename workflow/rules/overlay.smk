for batch in BATCHES:

    rule:
        """PNGs for a person: outlines over intensity every n z slices, projections."""
        name:
            f"overlay_{batch}"
        input:
            intensity=batch_paths(batch, "resampled.tif"),
            labels=batch_paths(batch, "labels.tif"),
        output:
            [
                report(
                    directory(path),
                    patterns=["{name}.png"],
                    caption="../report/overlay.rst",
                    category="Overlays",
                    subcategory=sample,
                )
                for path, sample in zip(batch_paths(batch, "overlay"), BATCHES[batch])
            ],
        log:
            batch_log("overlay", batch),
        group:
            "stages"
        conda:
            ENV
        resources:
            **stage_resources("overlay"),
        params:
            stage="overlay",
            stacks=per_stack(batch, stack_params(**config["overlay"])),
            code=code_fingerprint("overlay", "io"),
        script:
            STAGE_SCRIPT
