# Only where config `ome_zarr: true` (rule all asks for it then).
for batch in BATCHES:

    rule:
        """The resampled stack and its labels as one OME-Zarr (NGFF labels/), on the CPU."""
        name:
            f"ome_zarr_{batch}"
        input:
            intensity=batch_paths(batch, "resampled.tif"),
            labels=batch_paths(batch, "labels.tif"),
        output:
            [directory(path) for path in batch_paths(batch, "segmentation.ome.zarr")],
        log:
            batch_log("ome_zarr", batch),
        group:
            "stages"
        conda:
            ENV
        resources:
            **stage_resources("ome_zarr", gpu=False),
        params:
            stage="ome_zarr",
            stacks=per_stack(batch, stack_params()),
            code=code_fingerprint("ome_zarr", "io"),
        script:
            STAGE_SCRIPT
