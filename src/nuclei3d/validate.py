"""Segmentation quality: match predicted nuclei to ground truth and score them.

Objects are matched one to one by their intersection over union (IoU), from the
contingency table of (true label, predicted label) pairs over the voxels where
both are foreground. A true and a predicted object form a *match* (a true
positive) when their IoU is at least the threshold; unmatched predicted objects are
false positives and unmatched true objects false negatives.

Ground truth drawn on the original (anisotropic) grid is compared on the result
(isotropic) grid: bring it there with :func:`to_grid` first.

Definitions
-----------
precision = TP / n_predicted, recall = TP / n_true, f1 = 2 TP / (n_true +
n_predicted) (the harmonic mean of the two). A ratio over an empty set is 1.0
when both sets are empty (nothing to find, nothing wrongly found) and 0.0 when
only that set is empty, so all three are always finite numbers in [0, 1]:

=====================  =========  ======  ====
truth, prediction      precision  recall  f1
=====================  =========  ======  ====
both empty             1.0        1.0     1.0
only prediction empty  0.0        0.0     0.0
only truth empty       0.0        0.0     0.0
=====================  =========  ======  ====

mean_iou is the mean IoU of the matched pairs, NaN when there are none.

Splits and merges do not depend on the IoU threshold. A predicted object *lies in*
a true object when more than half of the predicted object's own voxels overlap it
(strictly more, so each predicted object lies in at most one true object):

- n_split counts the true objects in which two or more predicted objects lie;
- n_merged counts, symmetrically, the predicted objects in which two or more true
  objects lie (more than half of each true object's voxels inside it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "Matching",
    "collect_job",
    "match_labels",
    "run_stage",
    "score_segmentation",
    "to_grid",
]

# Keys of score_segmentation that are computed once per IoU threshold.
PER_THRESHOLD = (
    "true_positives",
    "false_positives",
    "false_negatives",
    "precision",
    "recall",
    "f1",
    "mean_iou",
)


@dataclass(frozen=True)
class Matching:
    """Result of :func:`match_labels`; the module docstring defines each field.

    Attributes
    ----------
    iou_threshold : float
        The threshold the matching used.
    n_true, n_predicted : int
        Objects (distinct non-zero labels) in the truth and the prediction.
    true_positives, false_positives, false_negatives : int
        Matched pairs, unmatched predicted objects, unmatched true objects.
    precision, recall, f1 : float
        In [0, 1], always finite (see the module docstring for empty inputs).
    mean_iou : float
        Mean IoU of the matched pairs; NaN without any.
    n_split, n_merged : int
        True objects split into several predicted ones; predicted objects that
        merge several true ones.
    pairs : tuple of (int, int, float)
        The matched (true label, predicted label, IoU), by true label.
    """

    iou_threshold: float
    n_true: int
    n_predicted: int
    true_positives: int
    false_positives: int
    false_negatives: int
    precision: float
    recall: float
    f1: float
    mean_iou: float
    n_split: int
    n_merged: int
    pairs: tuple = field(default=(), repr=False)


@dataclass(frozen=True)
class _Overlaps:
    """Objects of both label images and every overlapping pair."""

    true_labels: np.ndarray  # (n_true,) label values
    true_sizes: np.ndarray  # (n_true,) voxel counts
    predicted_labels: np.ndarray
    predicted_sizes: np.ndarray
    rows: np.ndarray  # (n_pairs,) index into true_labels
    cols: np.ndarray  # (n_pairs,) index into predicted_labels
    intersection: np.ndarray  # (n_pairs,) overlapping voxels
    iou: np.ndarray  # (n_pairs,)


def _check_labels(truth, predicted):
    truth = np.asarray(truth)
    predicted = np.asarray(predicted)
    if truth.shape != predicted.shape:
        raise ValueError(
            f"`truth` (shape {truth.shape}) and `predicted` (shape "
            f"{predicted.shape}) must have the same shape"
        )
    for name, labels in (("truth", truth), ("predicted", predicted)):
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"`{name}` (dtype {labels.dtype}, shape {labels.shape}) must be an "
                "integer label image (0 = background)"
            )
        if labels.size and labels.min() < 0:
            raise ValueError(
                f"`{name}` (shape {labels.shape}) has negative labels (smallest "
                f"{labels.min()}); labels are 0 (background) or positive"
            )
    return truth, predicted


def _check_threshold(iou_threshold, name="iou_threshold"):
    threshold = float(iou_threshold)
    if not 0 < threshold <= 1:
        raise ValueError(f"`{name}` ({iou_threshold!r}) must be in (0, 1]")
    return threshold


def _objects(labels):
    """Label values, voxel counts, and each voxel's object index (-1 = background)."""
    values, inverse, counts = np.unique(
        labels.ravel(), return_inverse=True, return_counts=True
    )
    inverse = inverse.ravel().astype(np.int64)
    if values.size and values[0] == 0:
        return values[1:], counts[1:], inverse - 1
    return values, counts, inverse


def _overlaps(truth, predicted):
    true_labels, true_sizes, t = _objects(truth)
    predicted_labels, predicted_sizes, p = _objects(predicted)
    both = (t >= 0) & (p >= 0)
    n_predicted = max(len(predicted_labels), 1)
    keys, intersection = np.unique(t[both] * n_predicted + p[both], return_counts=True)
    rows, cols = np.divmod(keys, n_predicted)
    union = true_sizes[rows] + predicted_sizes[cols] - intersection
    return _Overlaps(
        true_labels=true_labels,
        true_sizes=true_sizes,
        predicted_labels=predicted_labels,
        predicted_sizes=predicted_sizes,
        rows=rows,
        cols=cols,
        intersection=intersection,
        iou=intersection / np.maximum(union, 1),
    )


def _assign(overlaps, threshold):
    """Indices into the pair arrays of the one-to-one matches at `threshold`."""
    candidates = np.flatnonzero(overlaps.iou >= threshold)
    if threshold > 0.5 or candidates.size == 0:
        # IoU > 0.5 with two objects of the other side is impossible: each object
        # has at most one candidate, so the candidates are the matching.
        return candidates
    from scipy.optimize import linear_sum_assignment

    rows, row_index = np.unique(overlaps.rows[candidates], return_inverse=True)
    cols, col_index = np.unique(overlaps.cols[candidates], return_inverse=True)
    iou = overlaps.iou[candidates]
    # Most matches first; among those, the largest total IoU (the IoU term adds
    # up to less than 1, the value of one more match).
    cost = np.zeros((rows.size, cols.size))
    cost[row_index, col_index] = -1 - iou / (2 * min(rows.size, cols.size))
    chosen_rows, chosen_cols = linear_sum_assignment(cost)
    lookup = np.full((rows.size, cols.size), -1)
    lookup[row_index, col_index] = candidates
    chosen = lookup[chosen_rows, chosen_cols]
    return np.sort(chosen[chosen >= 0])


def _count_clusters(owner_of_member, n_owners):
    """Owners that two or more members lie in (owner index per member, -1 none)."""
    owned = owner_of_member[owner_of_member >= 0]
    return int(np.count_nonzero(np.bincount(owned, minlength=n_owners) >= 2))


def _splits_and_merges(overlaps):
    n_true, n_predicted = overlaps.true_labels.size, overlaps.predicted_labels.size
    # A predicted object lies in a true one when more than half of it overlaps it.
    inside_true = 2 * overlaps.intersection > overlaps.predicted_sizes[overlaps.cols]
    home_of_predicted = np.full(n_predicted, -1)
    home_of_predicted[overlaps.cols[inside_true]] = overlaps.rows[inside_true]
    inside_predicted = 2 * overlaps.intersection > overlaps.true_sizes[overlaps.rows]
    home_of_true = np.full(n_true, -1)
    home_of_true[overlaps.rows[inside_predicted]] = overlaps.cols[inside_predicted]
    return (
        _count_clusters(home_of_predicted, n_true),
        _count_clusters(home_of_true, n_predicted),
    )


def _ratio(numerator, denominator, other):
    """numerator / denominator; 1.0 if both sets are empty, 0.0 if only this one."""
    if denominator == 0:
        return 1.0 if other == 0 else 0.0
    return numerator / denominator


def _match(overlaps, threshold, splits_and_merges):
    n_true, n_predicted = overlaps.true_labels.size, overlaps.predicted_labels.size
    matched = _assign(overlaps, threshold)
    tp = int(matched.size)
    iou = overlaps.iou[matched]
    n_split, n_merged = splits_and_merges
    return Matching(
        iou_threshold=threshold,
        n_true=int(n_true),
        n_predicted=int(n_predicted),
        true_positives=tp,
        false_positives=int(n_predicted - tp),
        false_negatives=int(n_true - tp),
        precision=_ratio(tp, n_predicted, n_true),
        recall=_ratio(tp, n_true, n_predicted),
        f1=_ratio(2 * tp, n_true + n_predicted, 0),
        mean_iou=float(np.sort(iou).mean()) if tp else math.nan,
        n_split=n_split,
        n_merged=n_merged,
        pairs=tuple(
            (int(overlaps.true_labels[r]), int(overlaps.predicted_labels[c]), float(v))
            for r, c, v in zip(
                overlaps.rows[matched], overlaps.cols[matched], iou, strict=True
            )
        ),
    )


def match_labels(truth, predicted, *, iou_threshold=0.5):
    """Match predicted objects to true objects one to one at an IoU threshold.

    For a threshold above 0.5 the matching is unique (an object cannot overlap two
    others by more than half of their union each). At 0.5 and below, an optimal
    assignment (``scipy.optimize.linear_sum_assignment``) picks the largest number
    of matches, and among those the largest total IoU.

    Parameters
    ----------
    truth, predicted : numpy.ndarray
        Integer label images of the same shape (any dimension), 0 = background.
        Label values need not be consecutive.
    iou_threshold : float, optional
        Smallest IoU of a match, in (0, 1]; a pair at exactly the threshold
        matches.

    Returns
    -------
    Matching
        Counts, precision, recall, F1, mean IoU, splits and merges; the module
        docstring defines each, empty inputs included.

    Raises
    ------
    ValueError
        If the shapes differ, a label image is not integer or has negative
        labels, or the threshold is outside (0, 1].

    Examples
    --------
    >>> truth = np.array([[1, 1, 0, 2, 2]])
    >>> predicted = np.array([[7, 7, 7, 0, 9]])
    >>> m = match_labels(truth, predicted)
    >>> m.true_positives, m.false_positives, m.false_negatives
    (2, 0, 0)
    >>> m.pairs
    ((1, 7, 0.6666666666666666), (2, 9, 0.5))
    >>> match_labels(truth, predicted, iou_threshold=0.6).f1
    0.5
    """
    truth, predicted = _check_labels(truth, predicted)
    threshold = _check_threshold(iou_threshold)
    overlaps = _overlaps(truth, predicted)
    return _match(overlaps, threshold, _splits_and_merges(overlaps))


def _suffix(threshold):
    percent = round(threshold * 100)
    if not math.isclose(percent, threshold * 100, abs_tol=1e-9):
        raise ValueError(
            f"threshold {threshold!r} is not a whole percentage (0.5, 0.75, ...): "
            "it names its keys, as `f1_iou50`"
        )
    return f"iou{percent:02d}"


def score_segmentation(truth, predicted, *, thresholds=(0.5, 0.75)):
    """Score a segmentation against ground truth at several IoU thresholds.

    Parameters
    ----------
    truth, predicted : numpy.ndarray
        Integer label images of the same shape, 0 = background (see
        :func:`match_labels`).
    thresholds : sequence of float, optional
        IoU thresholds in (0, 1], each a whole percentage.

    Returns
    -------
    dict
        One flat dict, with stable keys (the module docstring defines each):

        - ``n_true``, ``n_predicted``, ``n_split``, ``n_merged`` (int), which do
          not depend on the threshold;
        - for each threshold, suffixed by ``_iou`` and its percentage (``_iou50``
          for 0.5, ``_iou75`` for 0.75, ``_iou05`` for 0.05): ``true_positives``,
          ``false_positives``, ``false_negatives`` (int), ``precision``,
          ``recall``, ``f1`` and ``mean_iou`` (float), e.g. ``f1_iou50``,
          ``mean_iou_iou50``.

    Raises
    ------
    ValueError
        As :func:`match_labels`; also if `thresholds` is empty, has a value that
        is not a whole percentage, or repeats one.

    Examples
    --------
    >>> truth = np.array([[1, 1, 0, 2, 2]])
    >>> scores = score_segmentation(truth, np.array([[7, 7, 7, 0, 9]]))
    >>> scores["n_true"], scores["f1_iou50"], scores["f1_iou75"]
    (2, 1.0, 0.0)
    >>> [key for key in scores if key.endswith("_iou75")][3:]
    ['precision_iou75', 'recall_iou75', 'f1_iou75', 'mean_iou_iou75']
    """
    truth, predicted = _check_labels(truth, predicted)
    values = [_check_threshold(t, "thresholds") for t in thresholds]
    if not values:
        raise ValueError("`thresholds` is empty: give at least one IoU threshold")
    suffixes = [_suffix(t) for t in values]
    if len(set(suffixes)) != len(suffixes):
        raise ValueError(f"`thresholds` {tuple(thresholds)!r} repeats a threshold")
    overlaps = _overlaps(truth, predicted)
    splits_and_merges = _splits_and_merges(overlaps)
    scores = {}
    for threshold, suffix in zip(values, suffixes, strict=True):
        matching = _match(overlaps, threshold, splits_and_merges)
        if not scores:
            scores = {
                key: getattr(matching, key)
                for key in ("n_true", "n_predicted", "n_split", "n_merged")
            }
        scores.update({f"{k}_{suffix}": getattr(matching, k) for k in PER_THRESHOLD})
    return scores


def to_grid(labels, shape):
    """Bring a label image to another grid by nearest-neighbour resampling.

    Ground truth is compared on the result (isotropic) grid: ground truth drawn on
    the original anisotropic grid is resampled to the shape of the result's
    labels, voxel values copied (never blended), so labels stay labels. Small
    objects can shrink, grow or vanish by up to half a result voxel at their edges.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer label image.
    shape : sequence of int
        Target shape, one positive size per axis of `labels`.

    Returns
    -------
    numpy.ndarray
        Labels of shape `shape`, in the dtype of `labels`.

    Raises
    ------
    ValueError
        If `labels` is not integer or `shape` does not fit its dimensions.

    Examples
    --------
    >>> to_grid(np.array([[0, 0, 3, 3, 3, 3]], np.uint16), (1, 3))
    array([[0, 3, 3]], dtype=uint16)
    """
    from skimage.transform import resize

    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"`labels` (dtype {labels.dtype}, shape {labels.shape}) must be an "
            "integer label image"
        )
    target = tuple(int(n) for n in shape)
    if len(target) != labels.ndim or min(target, default=0) < 1:
        raise ValueError(
            f"`shape` {tuple(shape)!r} must give one positive size per axis of "
            f"`labels` (shape {labels.shape})"
        )
    resized = resize(labels, target, order=0, preserve_range=True, anti_aliasing=False)
    return np.rint(resized).astype(labels.dtype)


def run_stage(stack, log):
    """Job of rule validate: score one stack's labels against its ground truth."""
    import pandas as pd

    from . import io

    labels, _ = io.read_stack(stack.inputs["labels"])
    truth, _ = io.read_stack(stack.inputs["truth"])
    scores = score_segmentation(to_grid(truth, labels.shape), labels)
    log.info("%s: %s", stack.name, scores)
    io.write_table(stack.output, pd.DataFrame([{"sample": stack.name, **scores}]))


def collect_job(tables, output, log):
    """Job of rule collect_validation: every stack's scores in one table."""
    import pandas as pd

    from . import io

    io.write_table(output, pd.concat(map(pd.read_csv, tables), ignore_index=True))
