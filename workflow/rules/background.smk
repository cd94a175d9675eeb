STAGE_OUTPUTS["background"] = "background.tif"
LABEL_STAGES.append("background")


for unit in units("background"):

    rule:
        """Subtract the background with a box top-hat of background.radius_um."""
        name:
            unit.rule("background")
        input:
            equalized=unit.needs("equalize", "equalized.tif"),
        output:
            unit.files("background", "background.tif"),
        log:
            unit.log("background"),
        group:
            unit.group
        conda:
            ENV
        resources:
            **stage_resources("background"),
        params:
            stage="background",
            stacks=unit.stacks("background"),
            code=code_fingerprint("background", "io"),
        script:
            STAGE_SCRIPT
