# Only where config `ome_zarr: true` (rule all asks for it then).
for unit in UNITS:

    rule:
        """The resampled stack and its labels as one OME-Zarr (NGFF labels/), on the CPU."""
        name:
            unit.rule("ome_zarr")
        input:
            intensity=unit.paths("resampled.tif"),
            labels=unit.paths("labels.tif"),
        output:
            [directory(path) for path in unit.paths("segmentation.ome.zarr")],
        log:
            unit.log("ome_zarr"),
        params:
            stacks=unit.each(stack_params()),
            code=code_fingerprint("ome_zarr", "io"),
        run:
            run_job(
                nuclei3d.ome_zarr.run_stage,
                rule,
                input,
                output,
                params,
                log,
                config,
                gpu=False,
            )
