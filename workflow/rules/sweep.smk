# Parameter sweep: every combination of the values under `sweep:` in the config,
# in folders named by the parameters (Snakemake's Paramspace). Each stage's folder
# names only the parameters up to that stage, so combinations that share them share
# its output: sweeping segment.spot_sigma_um reuses resample, equalize, background.
wildcard_constraints:
    **{column: r"[^/]+" for column in SWEPT_COLUMNS},


use rule resample as sweep_resample with:
    output:
        swept(RESAMPLED, "resampled.tif"),
    log:
        sweep_log(RESAMPLED, "resample"),
    benchmark:
        f"{SWEEP}/{RESAMPLED.wildcard_pattern}/benchmarks/resample/{{sample}}.tsv"
    params:
        image=image_path,
        channel=channel_of,
        target_voxel_size_um=lambda w: RESAMPLED.instance(w)["target_voxel_size_um"],
        voxel_size_um=sheet_voxel_size,
        default_voxel_size_um=config["default_voxel_size_um"],
        code=code_fingerprint("resample", "io"),


use rule equalize as sweep_equalize with:
    input:
        swept(RESAMPLED, "resampled.tif"),
    output:
        swept(EQUALIZED, "equalized.tif"),
    log:
        sweep_log(EQUALIZED, "equalize"),
    benchmark:
        f"{SWEEP}/{EQUALIZED.wildcard_pattern}/benchmarks/equalize/{{sample}}.tsv"
    params:
        enabled=lambda w: bool(EQUALIZED.instance(w)["equalize"]),
        code=code_fingerprint("equalize", "io"),


use rule background as sweep_background with:
    input:
        swept(EQUALIZED, "equalized.tif"),
    output:
        swept(BACKGROUND, "background.tif"),
    log:
        sweep_log(BACKGROUND, "background"),
    benchmark:
        f"{SWEEP}/{BACKGROUND.wildcard_pattern}/benchmarks/background/{{sample}}.tsv"
    params:
        radius_um=lambda w: BACKGROUND.instance(w)["radius_um"],
        code=code_fingerprint("background", "io"),


use rule segment as sweep_segment with:
    input:
        swept(BACKGROUND, "background.tif"),
    output:
        swept(LABELLED, "labels.tif"),
    log:
        sweep_log(LABELLED, "segment"),
    benchmark:
        f"{SWEEP}/{LABELLED.wildcard_pattern}/benchmarks/segment/{{sample}}.tsv"
    params:
        spot_sigma_um=lambda w: LABELLED.instance(w)["spot_sigma_um"],
        outline_sigma_um=lambda w: LABELLED.instance(w)["outline_sigma_um"],
        code=code_fingerprint("segment", "io"),


use rule validate as sweep_validate with:
    input:
        labels=swept(LABELLED, "labels.tif"),
        truth=ground_truth_of,
    output:
        swept(LABELLED, "validation.csv"),
    log:
        sweep_log(LABELLED, "validate"),
    benchmark:
        f"{SWEEP}/{LABELLED.wildcard_pattern}/benchmarks/validate/{{sample}}.tsv"


rule rank_sweep:
    """Rank the parameter sets by mean F1 over the annotated stacks."""
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
    conda:
        "../../envs/nuclei3d.yaml"
    params:
        combinations=[
            combination
            for combination in COMBINATIONS.to_dict("records")
            for sample in ANNOTATED
        ],
        code=code_fingerprint("sweep"),
    script:
        "../../scripts/rank_sweep.py"
