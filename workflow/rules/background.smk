for unit in UNITS:

    rule:
        """Subtract the background with a box top-hat of background.radius_um."""
        name:
            unit.rule("background")
        input:
            equalized=unit.paths("equalized.tif"),
        output:
            unit.paths("background.tif"),
        log:
            unit.log("background"),
        resources:
            **STAGE_RESOURCES,
        params:
            stacks=unit.each(stack_params(radius_um=config["background"]["radius_um"])),
            code=code_fingerprint("background", "io"),
        run:
            run_job(
                nuclei3d.background.run_stage,
                rule,
                input,
                output,
                params,
                log,
                config,
            )
