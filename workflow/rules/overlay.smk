STAGE_OUTPUTS["overlay"] = "overlay"


for unit in units("overlay"):

    rule:
        """PNGs for a person: outlines over intensity every n z slices, projections."""
        name:
            unit.rule("overlay")
        input:
            intensity=unit.needs("resample", "resampled.tif"),
            labels=unit.needs("segment", "labels.tif"),
        output:
            [
                report(
                    directory(path),
                    patterns=["{name}.png"],
                    caption="../report/overlay.rst",
                    category="Overlays",
                    subcategory=sample,
                )
                for path, sample in zip(unit.files("overlay", "overlay"), unit.samples)
            ],
        log:
            unit.log("overlay"),
        group:
            unit.group
        conda:
            ENV
        resources:
            **stage_resources("overlay"),
        params:
            stage="overlay",
            stacks=unit.stacks("overlay"),
            code=code_fingerprint("overlay", "io"),
        script:
            STAGE_SCRIPT
