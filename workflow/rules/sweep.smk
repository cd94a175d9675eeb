# Parameter sweep: every combination of the values under `sweep:` in the config,
# in folders named by the parameters (Snakemake's Paramspace). Each stage's folder
# names only the parameters up to that stage, so combinations that share them share
# its output: sweeping segment.spot_sigma_um reuses resample, equalize, background.
wildcard_constraints:
    **{column: r"[^/]+" for column in SWEPT_COLUMNS},


rule sweep_resample:
    input:
        image=lambda w: image_of(w.sample),
    output:
        swept(RESAMPLED, "resampled.tif"),
    log:
        sweep_log(RESAMPLED, "resample"),
    group:
        "stages"
    conda:
        ENV
    resources:
        **stage_resources("resample"),
    params:
        stage="resample",
        stacks=swept_params(
            RESAMPLED,
            lambda s, values: resample_params(s, values["target_voxel_size_um"]),
        ),
        code=code_fingerprint("resample", "io", "formats", "slabs"),
    script:
        STAGE_SCRIPT


rule sweep_equalize:
    input:
        resampled=swept(RESAMPLED, "resampled.tif"),
    output:
        equalized=swept(EQUALIZED, "equalized.tif"),
        profile=swept(EQUALIZED, "depth_profile.csv"),
    log:
        sweep_log(EQUALIZED, "equalize"),
    group:
        "stages"
    conda:
        ENV
    resources:
        **stage_resources("equalize"),
    params:
        stage="equalize",
        stacks=swept_params(
            EQUALIZED,
            lambda s, values: dict(sample=s, enabled=bool(values["equalize"])),
        ),
        code=code_fingerprint("equalize", "io"),
    script:
        STAGE_SCRIPT


rule sweep_background:
    input:
        equalized=swept(EQUALIZED, "equalized.tif"),
    output:
        swept(BACKGROUND, "background.tif"),
    log:
        sweep_log(BACKGROUND, "background"),
    group:
        "stages"
    conda:
        ENV
    resources:
        **stage_resources("background"),
    params:
        stage="background",
        stacks=swept_params(
            BACKGROUND, lambda s, values: dict(sample=s, radius_um=values["radius_um"])
        ),
        code=code_fingerprint("background", "io"),
    script:
        STAGE_SCRIPT


rule sweep_segment:
    input:
        background=swept(BACKGROUND, "background.tif"),
    output:
        swept(LABELLED, "labels.tif"),
    log:
        sweep_log(LABELLED, "segment"),
    group:
        "stages"
    conda:
        ENV
    resources:
        **stage_resources("segment"),
    params:
        stage="segment",
        stacks=swept_params(
            LABELLED,
            lambda s, values: dict(
                sample=s,
                spot_sigma_um=values["spot_sigma_um"],
                outline_sigma_um=values["outline_sigma_um"],
            ),
        ),
        code=code_fingerprint("segment", "io"),
    script:
        STAGE_SCRIPT


rule sweep_validate:
    input:
        labels=swept(LABELLED, "labels.tif"),
        truth=ground_truth_of,
    output:
        swept(LABELLED, "validation.csv"),
    log:
        sweep_log(LABELLED, "validate"),
    group:
        "stages"
    conda:
        ENV
    resources:
        **stage_resources("validate", gpu=False),
    params:
        stage="validate",
        stacks=lambda w: [dict(sample=w.sample)],
        code=code_fingerprint("validate", "io"),
    script:
        STAGE_SCRIPT


# Rank the parameter sets by mean F1 over the annotated stacks.
rule rank_sweep:
    input:
        [
            swept(LABELLED, "validation.csv").format(sample=sample, **combination)
            for combination in COMBINATIONS.to_dict("records")
            for sample in ANNOTATED
        ],
    output:
        ranking=report(
            f"{SWEEP}/ranking.csv",
            caption="../report/ranking.rst",
            category="Parameter sweep",
        ),
        best=f"{SWEEP}/best_parameters.yaml",
    log:
        f"{SWEEP}/logs/rank_sweep.log",
    benchmark:
        f"{SWEEP}/benchmarks/rank_sweep.tsv"
    localrule: True
    conda:
        ENV
    params:
        combinations=[
            combination
            for combination in COMBINATIONS.to_dict("records")
            for sample in ANNOTATED
        ],
        code=code_fingerprint("sweep"),
    script:
        "../../scripts/rank_sweep.py"
