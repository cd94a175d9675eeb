"""Parameter sweeps: the combinations to run, and their ranking by F1."""

from __future__ import annotations

import itertools

import pandas as pd

__all__ = ["SWEPT", "rank_parameter_sets", "sweep_combinations"]

#: Swept parameters in pipeline order: (config section, key, column name).
SWEPT = (
    ("resample", "target_voxel_size_um", "target_voxel_size_um"),
    ("equalize", "enabled", "equalize"),
    ("background", "radius_um", "radius_um"),
    ("segment", "spot_sigma_um", "spot_sigma_um"),
    ("segment", "outline_sigma_um", "outline_sigma_um"),
)


def sweep_combinations(config):
    """Every combination of the values listed under ``sweep:`` in the config.

    A parameter the sweep does not list keeps its value from its own section.

    Parameters
    ----------
    config : dict
        The workflow config.

    Returns
    -------
    pandas.DataFrame
        One row per combination, one column per swept parameter (:data:`SWEPT`
        order), in the order the values are listed.

    Examples
    --------
    >>> config = {"resample": {"target_voxel_size_um": 1.0},
    ...           "equalize": {"enabled": True}, "background": {"radius_um": 5.0},
    ...           "segment": {"spot_sigma_um": 3.0, "outline_sigma_um": 1.0},
    ...           "sweep": {"segment": {"spot_sigma_um": [2.0, 3.0]}}}
    >>> sweep_combinations(config)["spot_sigma_um"].tolist()
    [2.0, 3.0]
    """
    sweep = config.get("sweep", {})
    values = [
        sweep.get(section, {}).get(key) or [config[section][key]]
        for section, key, _ in SWEPT
    ]
    rows = list(itertools.product(*values))
    return pd.DataFrame(rows, columns=[column for _, _, column in SWEPT])


def rank_parameter_sets(scores, *, by="f1_iou50"):
    """Rank parameter sets by their mean score over the annotated stacks.

    Parameters
    ----------
    scores : pandas.DataFrame
        One row per (parameter set, stack): the :data:`SWEPT` columns, ``sample``
        and metric columns from :func:`nuclei3d.validate.score_segmentation`.
    by : str, optional
        Metric to rank by (its mean over stacks, highest first).

    Returns
    -------
    pandas.DataFrame
        One row per parameter set: ``rank`` (1 = best), the parameters,
        ``stacks`` and the mean of every numeric metric, best first; ties keep
        the order of the sweep.

    Examples
    --------
    >>> scores = pd.DataFrame({"spot_sigma_um": [2, 2, 3, 3], "sample": list("abab"),
    ...                        "f1_iou50": [0.5, 0.7, 1.0, 0.5]})
    >>> ranking = rank_parameter_sets(scores)
    >>> ranking[["rank", "spot_sigma_um", "f1_iou50"]].values.tolist()
    [[1.0, 3.0, 0.75], [2.0, 2.0, 0.6]]
    """
    if by not in scores:
        raise ValueError(f"`scores` has no column {by!r}: {list(scores.columns)}")
    params = [c for _, _, c in SWEPT if c in scores]
    metrics = [c for c in scores.select_dtypes("number") if c not in params]
    grouped = scores.groupby(params, sort=False)
    ranking = grouped[metrics].mean()
    ranking.insert(0, "stacks", grouped["sample"].nunique())
    ranking = ranking.reset_index().sort_values(by, ascending=False, kind="stable")
    ranking.insert(0, "rank", range(1, len(ranking) + 1))
    return ranking.reset_index(drop=True)
