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
