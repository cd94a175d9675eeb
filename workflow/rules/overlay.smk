for unit in UNITS:

    rule:
        """PNGs for a person: outlines over intensity every n z slices, projections."""
        name:
            unit.rule("overlay")
        input:
            intensity=unit.paths("resampled.tif"),
            labels=unit.paths("labels.tif"),
        output:
            [
                report(
                    directory(path),
                    patterns=["{name}.png"],
                    caption="../report/overlay.rst",
                    category="Overlays",
                    subcategory="{sample}" if unit.batch is None else sample,
                )
                for path, sample in zip(unit.paths("overlay"), unit.members or [None])
            ],
        log:
            unit.log("overlay"),
        resources:
            **STAGE_RESOURCES,
        params:
            stacks=unit.each(stack_params(**config["overlay"])),
            code=code_fingerprint("overlay", "io"),
        run:
            run_job(
                nuclei3d.overlay.run_stage, rule, input, output, params, log, config
            )
