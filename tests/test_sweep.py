"""The parameter sweep on the demo data: shared upstream work, a ranking."""

import re

import pandas as pd
import pytest
import yaml

from nuclei3d.sweep import rank_parameter_sets, sweep_combinations

from .conftest import job_counts, make_workdir, run_snakemake

CONFIG = {
    "resample": {"target_voxel_size_um": 1.0},
    "equalize": {"enabled": True},
    "background": {"radius_um": 5.0},
    "segment": {"spot_sigma_um": 3.0, "outline_sigma_um": 1.0},
}


def test_combinations_fill_in_unswept_parameters():
    config = dict(
        CONFIG,
        sweep={
            "segment": {"spot_sigma_um": [2.0, 4.0]},
            "background": {"radius_um": [4.0, 6.0]},
        },
    )
    combos = sweep_combinations(config)
    assert len(combos) == 4
    assert set(combos["target_voxel_size_um"]) == {1.0}
    assert set(combos["outline_sigma_um"]) == {1.0}
    assert combos[["radius_um", "spot_sigma_um"]].values.tolist() == [
        [4.0, 2.0],
        [4.0, 4.0],
        [6.0, 2.0],
        [6.0, 4.0],
    ]


def test_ranking_is_by_mean_f1_best_first():
    scores = pd.DataFrame(
        {
            "spot_sigma_um": [2.0, 2.0, 3.0, 3.0, 4.0, 4.0],
            "sample": ["a", "b"] * 3,
            "f1_iou50": [0.6, 0.8, 0.9, 0.95, 0.1, 0.2],
            "n_true": [10, 12] * 3,
        }
    )
    ranking = rank_parameter_sets(scores)
    assert ranking["spot_sigma_um"].tolist() == [3.0, 2.0, 4.0]
    assert ranking["rank"].tolist() == [1, 2, 3]
    assert ranking["f1_iou50"].tolist() == pytest.approx([0.925, 0.7, 0.15])
    assert (ranking["stacks"] == 2).all()


def test_ranking_needs_its_metric():
    with pytest.raises(ValueError, match="no column 'f1_iou50'"):
        rank_parameter_sets(pd.DataFrame({"sample": ["a"], "spot_sigma_um": [1.0]}))


@pytest.mark.workflow
def test_sweep_shares_upstream_and_names_the_best(tmp_path):
    workdir = make_workdir(
        tmp_path,
        ("stack_a", "stack_b"),
        sweep={"segment": {"spot_sigma_um": [2.0, 3.0], "outline_sigma_um": [1.0]}},
    )
    count = job_counts(workdir, "sweep")
    # Two spot sigmas: the stage rules run the two stacks once up to background,
    # twice from segment on, one job per parameter set.
    sweep_jobs = {r: n for r, n in count.items() if re.search(r"_sweep\d+$", r)}
    assert sweep_jobs == {
        "resample_sweep0": 1,
        "equalize_sweep0": 1,
        "background_sweep0": 1,
        "segment_sweep0": 1,
        "segment_sweep1": 1,
        "validate_sweep0": 1,
        "validate_sweep1": 1,
    }
    assert not any(rule.endswith(("_batch0", "_batch1")) for rule in count)
    run_snakemake(workdir, "sweep")
    sweep = workdir / "results" / "sweep"
    ranking = pd.read_csv(sweep / "ranking.csv")
    assert sorted(ranking["spot_sigma_um"]) == [2.0, 3.0]
    assert ranking["f1_iou50"].is_monotonic_decreasing
    assert (ranking["stacks"] == 2).all()
    best = yaml.safe_load((sweep / "best_parameters.yaml").read_text())
    assert best["segment"]["spot_sigma_um"] == ranking.loc[0, "spot_sigma_um"]
    folder = sweep / "target_voxel_size_um~1.0/equalize~True/radius_um~5.0"
    assert (folder / "stack_a/background.tif").is_file()
    assert (
        folder / "spot_sigma_um~2.0/outline_sigma_um~1.0/stack_a/labels.tif"
    ).is_file()
