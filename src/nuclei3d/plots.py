"""Figures of a run for the Snakemake report (matplotlib, no display needed)."""

from __future__ import annotations

import numpy as np

__all__ = ["plot_depth_profiles", "plot_job", "plot_nuclei", "plot_volumes"]


def _figure(width=6.0, height=3.5, columns=1):
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no state

    figure = Figure(figsize=(width, height), layout="constrained")
    return figure, figure.subplots(1, columns, sharey=True)


def plot_nuclei(summary):
    """Bar chart of nuclei per stack, from the run's ``summary.csv`` table."""
    figure, axes = _figure(max(4.0, 0.4 * len(summary)), 3.5)
    axes.bar(summary["sample"], summary["nuclei"], color="tab:blue")
    axes.set_ylabel("nuclei")
    axes.set_title("Nuclei per stack")
    axes.tick_params(axis="x", rotation=90)
    return figure


def plot_volumes(label_statistics):
    """Histogram of nucleus volumes (µm³), one outline per stack."""
    figure, axes = _figure()
    volumes = label_statistics["volume_um3"]
    bins = np.histogram_bin_edges(volumes, bins=30) if len(volumes) else 10
    for sample, rows in label_statistics.groupby("sample", sort=False):
        axes.hist(rows["volume_um3"], bins=bins, histtype="step", label=sample)
    axes.set_xlabel("volume (µm³)")
    axes.set_ylabel("nuclei")
    axes.set_title("Volume distribution")
    if label_statistics["sample"].nunique() <= 12:
        axes.legend(fontsize="small")
    return figure


def plot_depth_profiles(profiles):
    """Slice mean intensity against depth, before and after equalization.

    Parameters
    ----------
    profiles : pandas.DataFrame
        Columns ``sample``, ``z``, ``mean_resampled``, ``mean_equalized``.
    """
    figure, (before, after) = _figure(9.0, 3.5, columns=2)
    for sample, rows in profiles.groupby("sample", sort=False):
        before.plot(rows["z"], rows["mean_resampled"], label=sample)
        after.plot(rows["z"], rows["mean_equalized"], label=sample)
    before.set_title("before equalization")
    after.set_title("after equalization")
    for axes in (before, after):
        axes.set_xlabel("z (slice of the resampled stack)")
    before.set_ylabel("mean intensity")
    return figure


def plot_job(summary, statistics, profiles, outputs, log):
    """Job of rule plot_run: the run's three figures as PNG files.

    Parameters
    ----------
    summary, statistics : str
        The run's ``summary.csv`` and ``label_statistics.csv``.
    profiles : list of str
        Every stack's ``depth_profile.csv``.
    outputs : dict of str to str
        PNG paths for ``nuclei``, ``volumes`` and ``depth``.
    log : logging.Logger
    """
    import pandas as pd

    from . import io

    depth = pd.concat(map(pd.read_csv, profiles), ignore_index=True)
    figures = {
        outputs["nuclei"]: plot_nuclei(pd.read_csv(summary)),
        outputs["volumes"]: plot_volumes(pd.read_csv(statistics)),
        outputs["depth"]: plot_depth_profiles(depth),
    }
    for path, figure in figures.items():
        with io.atomic_path(path) as tmp:
            figure.savefig(tmp, format="png", dpi=100)
        log.info("wrote %s", path)
