# Every per-stack stage: one rule per unit (a batch of the run, or a parameter
# set of the sweep: common.smk, `units`), all running scripts/stage.py.
STAGE_OUTPUTS["resample"] = "resampled.tif"
LABEL_STAGES.append("resample")


for unit in units("resample"):

    rule:
        """Resample a stack to isotropic voxels of resample.target_voxel_size_um."""
        name:
            unit.rule("resample")
        input:
            image=unit.images,
        output:
            unit.files("resample", "resampled.tif"),
        log:
            unit.log("resample"),
        group:
            unit.group
        conda:
            ENV
        resources:
            **stage_resources("resample"),
        params:
            stage="resample",
            stacks=unit.stacks("resample", each=sheet_params),
            code=code_fingerprint("resample", "io", "formats", "slabs"),
        script:
            STAGE_SCRIPT
