import math

import numpy as np
import pytest
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from nuclei3d.validate import (
    PER_THRESHOLD,
    match_labels,
    score_segmentation,
    to_grid,
)

COUNTS = ("n_true", "n_predicted", "n_split", "n_merged")


@pytest.fixture(params=[2, 3], ids=["2d", "3d"])
def draw(request):
    """Draw labelled (y, x) boxes; in 3D each box spans z slices 1 and 2."""
    ndim = request.param

    def draw(*boxes, shape=(12, 16)):
        labels = np.zeros(((4,) if ndim == 3 else ()) + shape, np.uint16)
        for label, y, x in boxes:
            labels[(slice(1, 3),) * (ndim == 3) + (slice(*y), slice(*x))] = label
        return labels

    return draw


def same(a, b):
    """Equal score dicts: counts exactly, ratios up to rounding, NaN equal to NaN."""
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], int):
            assert a[key] == b[key], key
        else:
            assert a[key] == pytest.approx(b[key], rel=1e-12, nan_ok=True), key


def brute_force_iou(truth, predicted):
    """IoU matrix (rows: true labels, columns: predicted labels) from masks."""
    t_ids = [v for v in np.unique(truth) if v]
    p_ids = [v for v in np.unique(predicted) if v]
    iou = np.zeros((len(t_ids), len(p_ids)))
    for i, t in enumerate(t_ids):
        for j, p in enumerate(p_ids):
            a, b = truth == t, predicted == p
            iou[i, j] = (a & b).sum() / (a | b).sum()
    return iou


def random_labels(seed, shape=(24, 40, 40)):
    """Blobby truth and a perturbed prediction: partial overlaps, splits, merges."""
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), 2.5)
    truth = ndimage.label(noise > 0.05)[0]
    shifted = np.roll(noise, 1, axis=2)
    other = shifted + 0.02 * ndimage.gaussian_filter(rng.standard_normal(shape), 1)
    predicted = ndimage.label(other > rng.uniform(0.03, 0.07))[0]
    return truth, predicted


def test_perfect_match(draw):
    truth = draw((1, (1, 5), (1, 6)), (2, (6, 11), (8, 15)))
    predicted = np.select([truth == 1, truth == 2], [40, 7])
    for threshold in (0.5, 0.75, 1.0):
        m = match_labels(truth, predicted, iou_threshold=threshold)
        assert (m.n_true, m.n_predicted, m.true_positives) == (2, 2, 2)
        assert (m.false_positives, m.false_negatives) == (0, 0)
        assert m.precision == m.recall == m.f1 == m.mean_iou == 1.0
        assert (m.n_split, m.n_merged) == (0, 0)
        assert m.pairs == ((1, 40, 1.0), (2, 7, 1.0))


def test_one_true_object_split_in_two(draw):
    truth = draw((1, (2, 6), (2, 8)))  # 4 × 6
    predicted = draw((3, (2, 6), (2, 6)), (9, (2, 6), (6, 8)))  # 4 × 4, 4 × 2
    scores = score_segmentation(truth, predicted)
    assert {k: scores[k] for k in COUNTS} == {
        "n_true": 1,
        "n_predicted": 2,
        "n_split": 1,
        "n_merged": 0,
    }
    # IoU 16/24 and 8/24: the larger part matches at 0.5, none at 0.75.
    assert scores["true_positives_iou50"] == scores["false_positives_iou50"] == 1
    assert scores["false_negatives_iou50"] == 0
    assert (scores["precision_iou50"], scores["recall_iou50"]) == (0.5, 1.0)
    assert scores["f1_iou50"] == pytest.approx(2 / 3)
    assert scores["mean_iou_iou50"] == pytest.approx(2 / 3)
    assert match_labels(truth, predicted).pairs[0][:2] == (1, 3)
    assert scores["true_positives_iou75"] == 0
    assert scores["f1_iou75"] == 0.0 and math.isnan(scores["mean_iou_iou75"])


def test_two_true_objects_merged_in_one(draw):
    truth = draw((3, (2, 6), (2, 6)), (9, (2, 6), (6, 8)))
    predicted = draw((1, (2, 6), (2, 8)))
    m = match_labels(truth, predicted)
    assert (m.n_split, m.n_merged) == (0, 1)
    assert (m.true_positives, m.false_positives, m.false_negatives) == (1, 0, 1)
    assert (m.precision, m.recall) == (1.0, 0.5)
    assert m.pairs == ((3, 1, pytest.approx(2 / 3)),)


def test_empty_prediction(draw):
    truth = draw((1, (1, 5), (1, 6)), (2, (6, 11), (8, 15)))
    m = match_labels(truth, np.zeros_like(truth))
    assert (m.n_true, m.n_predicted, m.true_positives) == (2, 0, 0)
    assert (m.false_positives, m.false_negatives) == (0, 2)
    assert m.precision == m.recall == m.f1 == 0.0
    assert math.isnan(m.mean_iou) and m.pairs == ()
    assert (m.n_split, m.n_merged) == (0, 0)


def test_empty_truth(draw):
    predicted = draw((5, (1, 5), (1, 6)))
    m = match_labels(np.zeros_like(predicted), predicted)
    assert (m.n_true, m.n_predicted, m.false_positives, m.false_negatives) == (
        0,
        1,
        1,
        0,
    )
    assert m.precision == m.recall == m.f1 == 0.0
    assert math.isnan(m.mean_iou)


def test_both_empty_is_perfect(draw):
    empty = draw()
    scores = score_segmentation(empty, empty)
    for suffix in ("iou50", "iou75"):
        assert scores[f"precision_{suffix}"] == scores[f"recall_{suffix}"] == 1.0
        assert scores[f"f1_{suffix}"] == 1.0
        assert math.isnan(scores[f"mean_iou_{suffix}"])
    assert all(scores[k] == 0 for k in COUNTS)


@pytest.mark.parametrize(
    ("inside", "threshold", "matched"),
    [(2, 0.5, True), (2, 0.51, False), (3, 0.75, True), (3, 0.76, False)],
)
def test_iou_exactly_at_the_threshold_matches(draw, inside, threshold, matched):
    truth = draw((1, (2, 3), (2, 6)))  # 4 voxels a slice
    predicted = draw((2, (2, 3), (2, 2 + inside)))  # IoU inside / 4
    m = match_labels(truth, predicted, iou_threshold=threshold)
    assert m.true_positives == int(matched)
    assert m.mean_iou == inside / 4 if matched else math.isnan(m.mean_iou)


def test_half_inside_does_not_count_for_splits_or_merges(draw):
    # Predicted 2 lies exactly half in true 1 and half in true 7; predicted 3 lies
    # wholly in true 1. Exactly half is not "more than half": no split, no merge.
    truth = draw((1, (2, 4), (2, 8)), (7, (2, 4), (8, 12)))
    predicted = draw((3, (2, 4), (2, 5)), (2, (2, 4), (6, 10)))
    m = match_labels(truth, predicted)
    assert (m.n_split, m.n_merged) == (0, 0)
    # One voxel column more of predicted 2 in true 1: now two lie in true 1.
    predicted = draw((3, (2, 4), (2, 5)), (2, (2, 4), (5, 9)))
    assert match_labels(truth, predicted).n_split == 1


def test_threshold_at_or_below_half_takes_the_most_matches(draw):
    # IoU (1, 5) = 4/8, (1, 6) = 2/6, (2, 5) = 2/7. Greedy by IoU would pair true 1
    # with predicted 5 and leave true 2 unmatched; the optimal assignment finds two.
    truth = draw((1, (2, 3), (2, 8)), (2, (2, 3), (8, 11)))
    predicted = draw((6, (2, 3), (2, 4)), (5, (2, 3), (4, 10)))
    m = match_labels(truth, predicted, iou_threshold=0.25)
    assert m.true_positives == 2
    assert [p[:2] for p in m.pairs] == [(1, 6), (2, 5)]
    assert m.mean_iou == pytest.approx((2 / 6 + 2 / 7) / 2)


def test_shapes_must_match():
    with pytest.raises(ValueError, match=r"shape \(3, 4\).*shape \(3, 5\)"):
        match_labels(np.zeros((3, 4), int), np.zeros((3, 5), int))
    with pytest.raises(ValueError, match=r"shape \(3, 4\).*shape \(3, 5\)"):
        score_segmentation(np.zeros((3, 4), int), np.zeros((3, 5), int))


@pytest.mark.parametrize(
    ("truth", "predicted", "message"),
    [
        (np.zeros((2, 3)), np.zeros((2, 3), int), r"`truth` \(dtype float64"),
        (np.zeros((2, 3), int), np.ones((2, 3), bool), r"`predicted` \(dtype bool"),
        (np.full((2, 3), -1), np.zeros((2, 3), int), r"`truth`.*negative.*-1"),
    ],
)
def test_labels_must_be_non_negative_integers(truth, predicted, message):
    with pytest.raises(ValueError, match=message):
        match_labels(truth, predicted)


@pytest.mark.parametrize("threshold", [0, -0.1, 1.5, math.nan])
def test_threshold_must_be_in_unit_interval(threshold):
    labels = np.ones((2, 2), int)
    with pytest.raises(ValueError, match=r"`iou_threshold` \(.*\) must be in"):
        match_labels(labels, labels, iou_threshold=threshold)
    with pytest.raises(ValueError, match=r"`thresholds` \(.*\) must be in"):
        score_segmentation(labels, labels, thresholds=(0.5, threshold))


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        ((), "is empty"),
        ((0.5, 0.125), r"0\.125 is not a whole percentage"),
        ((0.5, 0.75, 0.50), "repeats a threshold"),
    ],
)
def test_thresholds_must_name_distinct_keys(thresholds, message):
    labels = np.ones((2, 2), int)
    with pytest.raises(ValueError, match=message):
        score_segmentation(labels, labels, thresholds=thresholds)


def test_score_keys_are_stable():
    labels = np.ones((2, 2), int)
    scores = score_segmentation(labels, labels, thresholds=(0.05, 0.5, 1.0))
    assert list(scores) == list(COUNTS) + [
        f"{key}_{suffix}"
        for suffix in ("iou05", "iou50", "iou100")
        for key in PER_THRESHOLD
    ]


@pytest.mark.parametrize("seed", range(4))
def test_matches_a_brute_force_reference(seed):
    truth, predicted = random_labels(seed)
    iou = brute_force_iou(truth, predicted)
    assert iou.shape[0] > 5 and iou.shape[1] > 5  # a meaningful case
    for threshold in (0.1, 0.3, 0.5, 0.75):
        m = match_labels(truth, predicted, iou_threshold=threshold)
        rows, cols = linear_sum_assignment(-(iou >= threshold).astype(float))
        expected = int((iou[rows, cols] >= threshold).sum())
        assert m.true_positives == expected
        t_ids, p_ids = np.unique(truth)[1:].tolist(), np.unique(predicted)[1:].tolist()
        for t, p, value in m.pairs:
            assert value == pytest.approx(iou[t_ids.index(t), p_ids.index(p)])
            assert value >= threshold
        # Each object in at most one pair.
        assert (
            len({p[0] for p in m.pairs}) == len({p[1] for p in m.pairs}) == len(m.pairs)
        )


@pytest.mark.parametrize("seed", range(4))
def test_invariants_and_relabeling(seed):
    truth, predicted = random_labels(seed)
    scores = score_segmentation(truth, predicted, thresholds=(0.3, 0.5, 0.75))

    for suffix in ("iou30", "iou50", "iou75"):
        tp = scores[f"true_positives_{suffix}"]
        assert tp + scores[f"false_positives_{suffix}"] == scores["n_predicted"]
        assert tp + scores[f"false_negatives_{suffix}"] == scores["n_true"]
        p, r = scores[f"precision_{suffix}"], scores[f"recall_{suffix}"]
        harmonic_mean = 2 * p * r / (p + r) if p + r else 0.0
        assert scores[f"f1_{suffix}"] == pytest.approx(harmonic_mean)
    assert (
        scores["true_positives_iou30"]
        >= scores["true_positives_iou50"]
        >= scores["true_positives_iou75"]
    )

    # Non-consecutive, permuted label values (and another dtype) score the same.
    rng = np.random.default_rng(seed)

    def relabel(labels):
        lut = np.concatenate([[0], rng.permutation(labels.max()) * 37 + 70_000]).astype(
            np.uint32
        )
        return lut[labels]

    same(
        score_segmentation(
            relabel(truth), relabel(predicted), thresholds=(0.3, 0.5, 0.75)
        ),
        scores,
    )

    # Swapping truth and prediction swaps precision and recall, splits and merges.
    swapped = score_segmentation(predicted, truth, thresholds=(0.3, 0.5, 0.75))
    assert (swapped["n_split"], swapped["n_merged"]) == (
        scores["n_merged"],
        scores["n_split"],
    )
    assert swapped["precision_iou50"] == scores["recall_iou50"]
    assert swapped["mean_iou_iou50"] == pytest.approx(scores["mean_iou_iou50"])


def test_to_grid_copies_nearest_voxels():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, size=(3, 4, 5)).astype(np.uint16)
    up = to_grid(labels, (6, 12, 5))
    assert up.dtype == np.uint16
    assert np.array_equal(up, labels.repeat(2, 0).repeat(3, 1))
    assert np.array_equal(to_grid(up, labels.shape), labels)
    assert np.array_equal(to_grid(labels, labels.shape), labels)
    big = np.array([[0, 70_000]], np.uint32)
    assert np.array_equal(to_grid(big, (1, 4)), [[0, 0, 70_000, 70_000]])


def test_to_grid_checks_its_input():
    with pytest.raises(ValueError, match=r"`labels` \(dtype float32, shape \(2, 3\)"):
        to_grid(np.zeros((2, 3), np.float32), (4, 6))
    with pytest.raises(ValueError, match=r"`shape` \(4, 6, 1\).*shape \(2, 3\)"):
        to_grid(np.zeros((2, 3), np.uint8), (4, 6, 1))
    with pytest.raises(ValueError, match=r"`shape` \(0, 6\) must give one positive"):
        to_grid(np.zeros((2, 3), np.uint8), (0, 6))


def test_demo_stack_against_its_truth_and_the_pipeline(opencl_device, tiny_stack):
    from nuclei3d.demo import DEMO_VOXEL_SIZE_UM
    from nuclei3d.pipeline import run_pipeline

    image, truth = tiny_stack
    assert score_segmentation(truth, truth)["f1_iou50"] == 1.0

    labels = run_pipeline(image, DEMO_VOXEL_SIZE_UM)["labels"]
    on_grid = to_grid(truth, labels.shape)
    assert on_grid.shape == labels.shape == (30, 30, 30)
    # Nearest-neighbour keeps every nucleus (none is smaller than a result voxel).
    assert set(np.unique(on_grid)) == set(np.unique(truth))
    scores = score_segmentation(on_grid, labels)
    print(
        "tiny demo stack, pipeline vs ground truth: "
        + ", ".join(f"{k}={v:.3g}" for k, v in scores.items())
    )
    assert 0 < scores["f1_iou50"] < 1
    assert scores["f1_iou75"] <= scores["f1_iou50"]
