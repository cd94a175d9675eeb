STAGE_OUTPUTS["equalize"] = "equalized.tif"
LABEL_STAGES.append("equalize")


for unit in units("equalize"):

    rule:
        """Scale every z slice so its mean equals the stack mean (depth decay); write
        the slice means before and after (for the intensity-depth plot)."""
        name:
            unit.rule("equalize")
        input:
            resampled=unit.needs("resample", "resampled.tif"),
        output:
            equalized=unit.files("equalize", "equalized.tif"),
            profile=unit.files("equalize", "depth_profile.csv"),
        log:
            unit.log("equalize"),
        group:
            unit.group
        conda:
            ENV
        resources:
            **stage_resources("equalize"),
        params:
            stage="equalize",
            stacks=unit.stacks("equalize"),
            code=code_fingerprint("equalize", "io"),
        script:
            STAGE_SCRIPT
