STAGE_OUTPUTS["segment"] = "labels.tif"
LABEL_STAGES.append("segment")


for unit in units("segment"):

    rule:
        """Voronoi-Otsu labeling (segment.spot_sigma_um, segment.outline_sigma_um)."""
        name:
            unit.rule("segment")
        input:
            background=unit.needs("background", "background.tif"),
        output:
            unit.files("segment", "labels.tif"),
        log:
            unit.log("segment"),
        group:
            unit.group
        conda:
            ENV
        resources:
            **stage_resources("segment"),
        params:
            stage="segment",
            stacks=unit.stacks("segment"),
            code=code_fingerprint("segment", "io"),
        script:
            STAGE_SCRIPT
