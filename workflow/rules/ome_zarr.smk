# Only where config `ome_zarr: true`.
if config["ome_zarr"]:
    STAGE_OUTPUTS["ome_zarr"] = "segmentation.ome.zarr"


for unit in units("ome_zarr"):

    rule:
        """The resampled stack and its labels as one OME-Zarr (NGFF labels/), on the CPU."""
        name:
            unit.rule("ome_zarr")
        input:
            intensity=unit.needs("resample", "resampled.tif"),
            labels=unit.needs("segment", "labels.tif"),
        output:
            [
                directory(path)
                for path in unit.files("ome_zarr", "segmentation.ome.zarr")
            ],
        log:
            unit.log("ome_zarr"),
        group:
            unit.group
        conda:
            ENV
        resources:
            **stage_resources("ome_zarr", gpu=False),
        params:
            stage="ome_zarr",
            stacks=unit.stacks(None),
            code=code_fingerprint("ome_zarr", "io"),
        script:
            STAGE_SCRIPT
