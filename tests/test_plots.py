import io

import numpy as np
import pandas as pd
import pytest

from nuclei3d.equalize import depth_profile
from nuclei3d.plots import plot_depth_profiles, plot_nuclei, plot_volumes


def test_depth_profile_is_the_slice_mean():
    rng = np.random.default_rng(0)
    before = rng.uniform(0, 10, (5, 6, 7))
    after = before * 2
    profile = depth_profile(before, after)
    np.testing.assert_allclose(profile["mean_resampled"], before.mean(axis=(1, 2)))
    np.testing.assert_allclose(profile["mean_equalized"], 2 * profile["mean_resampled"])
    assert profile["z"].tolist() == [0, 1, 2, 3, 4]


def test_depth_profile_shapes_must_match():
    with pytest.raises(ValueError, match=r"same shape"):
        depth_profile(np.zeros((2, 2, 2)), np.zeros((2, 2, 3)))


def png_bytes(figure):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def test_figures_render_with_their_data():
    summary = pd.DataFrame({"sample": ["a", "b"], "nuclei": [3, 5]})
    statistics = pd.DataFrame(
        {"sample": ["a"] * 3 + ["b"] * 5, "volume_um3": np.arange(8.0) + 100}
    )
    profiles = pd.DataFrame(
        {
            "sample": ["a", "a"],
            "z": [0, 1],
            "mean_resampled": [2.0, 1.0],
            "mean_equalized": [1.5, 1.5],
        }
    )
    nuclei = plot_nuclei(summary)
    assert [p.get_height() for p in nuclei.axes[0].patches] == [3, 5]
    volumes = plot_volumes(statistics)
    assert len(volumes.axes[0].patches) == 2  # one outline per stack
    depth = plot_depth_profiles(profiles)
    assert [t.get_text() for t in (a.title for a in depth.axes)] == [
        "before equalization",
        "after equalization",
    ]
    for figure in (nuclei, volumes, depth):
        assert png_bytes(figure).startswith(b"\x89PNG")


def test_volume_plot_without_nuclei():
    empty = pd.DataFrame({"sample": pd.Series(dtype=str), "volume_um3": []})
    assert png_bytes(plot_volumes(empty)).startswith(b"\x89PNG")


def test_many_stacks_are_summed_up_not_drawn_one_by_one():
    """Beyond MANY_STACKS: a histogram of counts, pooled volumes, median depth."""
    from nuclei3d.plots import MANY_STACKS

    rng = np.random.default_rng(1)
    n = MANY_STACKS + 1
    samples = [f"s{i}" for i in range(n)]
    summary = pd.DataFrame({"sample": samples, "nuclei": rng.integers(40, 60, n)})
    nuclei = plot_nuclei(summary)
    assert nuclei.get_size_inches()[0] < 10  # not 0.4 inch per stack
    counts = sum(p.get_height() for p in nuclei.axes[0].patches)
    assert counts == n  # histogram bars count stacks
    statistics = pd.DataFrame(
        {"sample": np.repeat(samples, 3), "volume_um3": rng.normal(300, 50, 3 * n)}
    )
    volumes = plot_volumes(statistics)
    assert sum(p.get_height() for p in volumes.axes[0].patches) == 3 * n
    profiles = pd.DataFrame(
        {
            "sample": np.repeat(samples, 4),
            "z": np.tile(np.arange(4), n),
            "mean_resampled": rng.random(4 * n),
            "mean_equalized": np.ones(4 * n),
        }
    )
    depth = plot_depth_profiles(profiles)
    for axes in depth.axes:
        assert len(axes.lines) == 1  # the median, not a line per stack
    np.testing.assert_allclose(depth.axes[1].lines[0].get_ydata(), 1.0)
    for figure in (nuclei, volumes, depth):
        assert png_bytes(figure).startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("figure", "tables"),
    [
        ("nuclei", [{"sample": ["a", "b"], "nuclei": [3, 5]}]),
        ("volumes", [{"sample": ["a", "a"], "volume_um3": [100.0, 120.0]}]),
        (
            "depth",  # one table per stack, drawn together
            [
                {"sample": [s, s], "z": [0, 1], "mean_resampled": [2.0, 1.0]}
                | {"mean_equalized": [1.5, 1.5]}
                for s in ("a", "b")
            ],
        ),
    ],
)
def test_plot_job_writes_its_figure_from_its_tables(tmp_path, figure, tables):
    import logging

    from nuclei3d.plots import plot_job

    paths = []
    for i, table in enumerate(tables):
        paths.append(tmp_path / f"table_{i}.csv")
        pd.DataFrame(table).to_csv(paths[-1], index=False)
    output = tmp_path / "plots" / f"{figure}.png"
    output.parent.mkdir()
    plot_job(figure, [str(p) for p in paths], str(output), logging.getLogger("t"))
    assert output.read_bytes().startswith(b"\x89PNG")
    assert [p.name for p in output.parent.iterdir()] == [output.name]  # no temp
    if len(paths) > 1:  # every table is drawn, not just the first
        first_only = tmp_path / "first_only.png"
        plot_job(figure, [str(paths[0])], str(first_only), logging.getLogger("t"))
        assert first_only.read_bytes() != output.read_bytes()
