"""Figures of a run for the Snakemake report (matplotlib, no display needed)."""

from __future__ import annotations

import numpy as np

__all__ = ["plot_depth_profiles", "plot_job", "plot_nuclei", "plot_volumes"]

# Above this many stacks a figure sums the stacks up instead of drawing one bar,
# outline or line each: those grow unreadable, and slow (10,000 stacks took 105 s
# and made a 400,000-pixel-wide bar chart).
MANY_STACKS = 60


def _figure(width=6.0, height=3.5, columns=1):
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no state

    figure = Figure(figsize=(width, height), layout="constrained")
    return figure, figure.subplots(1, columns, sharey=True)


def plot_nuclei(summary):
    """Nuclei per stack, from the run's ``summary.csv`` table.

    One bar per stack, or beyond ``MANY_STACKS`` stacks a histogram of the
    counts.
    """
    if len(summary) > MANY_STACKS:
        figure, axes = _figure()
        axes.hist(summary["nuclei"], bins=30, color="tab:blue")
        axes.set_xlabel("nuclei in a stack")
        axes.set_ylabel("stacks")
        axes.set_title(f"Nuclei per stack ({len(summary)} stacks)")
        return figure
    figure, axes = _figure(max(4.0, 0.4 * len(summary)), 3.5)
    axes.bar(summary["sample"], summary["nuclei"], color="tab:blue")
    axes.set_ylabel("nuclei")
    axes.set_title("Nuclei per stack")
    axes.tick_params(axis="x", rotation=90)
    return figure


def plot_volumes(label_statistics):
    """Histogram of nucleus volumes (µm³), one outline per stack.

    Beyond ``MANY_STACKS`` stacks, one histogram of all nuclei.
    """
    figure, axes = _figure()
    volumes = label_statistics["volume_um3"]
    bins = np.histogram_bin_edges(volumes, bins=30) if len(volumes) else 10
    stacks = label_statistics["sample"].nunique()
    if stacks > MANY_STACKS:
        axes.hist(volumes, bins=bins, color="tab:blue")
        axes.set_title(f"Volume distribution ({stacks} stacks)")
    else:
        for sample, rows in label_statistics.groupby("sample", sort=False):
            axes.hist(rows["volume_um3"], bins=bins, histtype="step", label=sample)
        axes.set_title("Volume distribution")
        if 0 < stacks <= 12:
            axes.legend(fontsize="small")
    axes.set_xlabel("volume (µm³)")
    axes.set_ylabel("nuclei")
    return figure


def plot_depth_profiles(profiles):
    """Slice mean intensity against depth, before and after equalization.

    One line per stack, or beyond ``MANY_STACKS`` stacks the median over the
    stacks at each depth, with the band of their 5-95 % quantiles.

    Parameters
    ----------
    profiles : pandas.DataFrame
        Columns ``sample``, ``z``, ``mean_resampled``, ``mean_equalized``.
    """
    figure, (before, after) = _figure(9.0, 3.5, columns=2)
    if profiles["sample"].nunique() > MANY_STACKS:
        for axes, column in ((before, "mean_resampled"), (after, "mean_equalized")):
            by_depth = profiles.groupby("z")[column]
            low, median, high = (by_depth.quantile(q) for q in (0.05, 0.5, 0.95))
            axes.fill_between(low.index, low, high, alpha=0.3, label="5-95 %")
            axes.plot(median.index, median, label="median")
        after.legend(fontsize="small")
    else:
        for sample, rows in profiles.groupby("sample", sort=False):
            before.plot(rows["z"], rows["mean_resampled"], label=sample)
            after.plot(rows["z"], rows["mean_equalized"], label=sample)
    before.set_title("before equalization")
    after.set_title("after equalization")
    for axes in (before, after):
        axes.set_xlabel("z (slice of the resampled stack)")
    before.set_ylabel("mean intensity")
    return figure


def plot_job(figure, tables, output, log):
    """Job of rules plot_nuclei, plot_volumes and plot_depth: one figure as a PNG.

    Parameters
    ----------
    figure : {"nuclei", "volumes", "depth"}
        Which figure: :func:`plot_nuclei` of the run's ``summary.csv``,
        :func:`plot_volumes` of its ``label_statistics.csv``, or
        :func:`plot_depth_profiles` of every stack's ``depth_profile.csv``.
    tables : list of str
        The CSV tables it is drawn from (concatenated).
    output : str
        The PNG file.
    log : logging.Logger
    """
    import pandas as pd

    from . import io

    draw = {
        "nuclei": plot_nuclei,
        "volumes": plot_volumes,
        "depth": plot_depth_profiles,
    }[figure]
    table = pd.concat(map(pd.read_csv, tables), ignore_index=True)
    with io.atomic_path(output) as tmp:
        draw(table).savefig(tmp, format="png", dpi=100)
    log.info("wrote %s", output)
