for unit in UNITS:

    rule:
        """Label nuclei with Voronoi-Otsu labeling."""
        name:
            unit.rule("segment")
        input:
            background=unit.paths("background.tif"),
        output:
            unit.paths("labels.tif"),
        log:
            unit.log("segment"),
        resources:
            **STAGE_RESOURCES,
        params:
            stacks=unit.each(stack_params(**config["segment"])),
            code=code_fingerprint("segment", "io"),
        run:
            run_job(
                nuclei3d.segment.run_stage, rule, input, output, params, log, config
            )
