"""Stage 6: per-nucleus statistics, and per-stack summaries."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["COLUMNS", "collect_statistics", "measure_nuclei", "summarize_stack"]

COLUMNS = [
    "label",
    "centroid_z_um",
    "centroid_y_um",
    "centroid_x_um",
    "bbox_min_z_um",
    "bbox_min_y_um",
    "bbox_min_x_um",
    "bbox_max_z_um",
    "bbox_max_y_um",
    "bbox_max_x_um",
    "voxel_count",
    "volume_um3",
    "equivalent_diameter_um",
    "mean_intensity",
    "min_intensity",
    "max_intensity",
    "std_intensity",
    "sum_intensity",
]

SUMMARY_COLUMNS = [
    "nuclei",
    "volume_um3_mean",
    "volume_um3_q05",
    "volume_um3_q25",
    "volume_um3_median",
    "volume_um3_q75",
    "volume_um3_q95",
]


def measure_nuclei(labels, intensity, voxel_size_um):
    """Measure every labelled nucleus (``cle.statistics_of_labelled_pixels``).

    Parameters
    ----------
    labels : numpy.ndarray
        3D label image (z, y, x), 0 = background.
    intensity : numpy.ndarray
        Intensity stack of the same shape (the resampled, uncorrected stack).
    voxel_size_um : sequence of 3 float
        Voxel size (z, y, x) in µm.

    Returns
    -------
    pandas.DataFrame
        One row per nucleus, columns :data:`COLUMNS`. Positions are in µm in
        napari's convention (voxel ``i`` at ``i * voxel_size``); the bounding box
        maximum is exclusive, as in scikit-image's ``regionprops``. An image
        without nuclei gives an empty table with the same columns.
    """
    import pyclesperanto_prototype as cle

    labels = np.asarray(labels)
    intensity = np.asarray(intensity)
    if labels.shape != intensity.shape or labels.ndim != 3:
        raise ValueError(
            f"`labels` (shape {labels.shape}) and `intensity` (shape "
            f"{intensity.shape}) must be 3D stacks of the same shape"
        )
    if not labels.any():
        return pd.DataFrame({c: pd.Series(dtype=float) for c in COLUMNS}).astype(
            {"label": int, "voxel_count": int}
        )
    stats = cle.statistics_of_labelled_pixels(intensity, labels)
    present = np.asarray(stats["area"]) > 0
    vz, vy, vx = (float(v) for v in voxel_size_um)
    table = {"label": np.asarray(stats["label"])[present].astype(int)}
    for axis, size in (("z", vz), ("y", vy), ("x", vx)):
        get = lambda key: np.asarray(stats[key], dtype=float)[present]  # noqa: E731
        table[f"centroid_{axis}_um"] = get(f"centroid_{axis}") * size
        table[f"bbox_min_{axis}_um"] = get(f"bbox_min_{axis}") * size
        table[f"bbox_max_{axis}_um"] = (get(f"bbox_max_{axis}") + 1) * size
    count = np.asarray(stats["area"])[present].astype(int)
    volume = count * vz * vy * vx
    table["voxel_count"] = count
    table["volume_um3"] = volume
    table["equivalent_diameter_um"] = np.cbrt(6 * volume / np.pi)
    for ours, theirs in (
        ("mean_intensity", "mean_intensity"),
        ("min_intensity", "min_intensity"),
        ("max_intensity", "max_intensity"),
        ("std_intensity", "standard_deviation_intensity"),
        ("sum_intensity", "sum_intensity"),
    ):
        table[ours] = np.asarray(stats[theirs], dtype=float)[present]
    return pd.DataFrame(table, columns=COLUMNS)


def summarize_stack(table):
    """Count and volume quantiles of one stack's nuclei.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`measure_nuclei`.

    Returns
    -------
    dict
        ``nuclei`` and volume mean and quantiles (µm³; NaN without nuclei), keys
        :data:`SUMMARY_COLUMNS`.

    Examples
    --------
    >>> summarize_stack(pd.DataFrame({"volume_um3": [1.0, 3.0]}))["nuclei"]
    2
    """
    volume = table["volume_um3"].astype(float)
    quantiles = volume.quantile([0.05, 0.25, 0.5, 0.75, 0.95]).tolist()
    return dict(
        zip(SUMMARY_COLUMNS, [len(volume), volume.mean(), *quantiles], strict=True)
    )


def collect_statistics(tables):
    """Join per-stack tables into the run's table and its per-stack summary.

    Parameters
    ----------
    tables : dict of str to pandas.DataFrame
        Per-stack tables from :func:`measure_nuclei`, by sample name.

    Returns
    -------
    label_statistics : pandas.DataFrame
        All nuclei, with a leading ``sample`` column.
    summary : pandas.DataFrame
        One row per sample: ``sample`` and :data:`SUMMARY_COLUMNS`.

    Examples
    --------
    >>> a = pd.DataFrame({"label": [1, 2], "volume_um3": [1.0, 3.0]})
    >>> rows, summary = collect_statistics({"a": a})
    >>> rows.columns.tolist(), summary["nuclei"].tolist()
    (['sample', 'label', 'volume_um3'], [2])
    """
    frames = [table.assign(sample=name) for name, table in tables.items()]
    rows = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["sample", *COLUMNS])
    )
    rows = rows[["sample", *[c for c in rows.columns if c != "sample"]]]
    summary = pd.DataFrame(
        [{"sample": name, **summarize_stack(table)} for name, table in tables.items()],
        columns=["sample", *SUMMARY_COLUMNS],
    )
    return rows, summary
