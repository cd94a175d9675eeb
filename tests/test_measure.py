from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nuclei3d.measure import (
    COLUMNS,
    collect_statistics,
    measure_nuclei,
    summarize_stack,
)


@pytest.fixture
def boxes():
    labels = np.zeros((10, 12, 14), np.uint16)
    labels[1:3, 2:5, 3:7] = 1  # 2 × 3 × 4 voxels
    labels[5:9, 6:8, 8:9] = 2  # 4 × 2 × 1 voxels
    intensity = np.where(labels == 1, 10.0, 0.0).astype(np.float32)
    intensity[labels == 2] = np.arange(8)
    return labels, intensity


def test_volumes_and_positions_in_micrometres(opencl_device, boxes):
    table = measure_nuclei(*boxes, (2.0, 0.5, 0.25))
    assert table.columns.tolist() == COLUMNS
    one = table.set_index("label").loc[1]
    assert one.voxel_count == 24
    assert one.volume_um3 == pytest.approx(24 * 2.0 * 0.5 * 0.25)
    assert one.centroid_z_um == pytest.approx(1.5 * 2.0)
    assert one.centroid_x_um == pytest.approx(4.5 * 0.25)
    assert (one.bbox_min_z_um, one.bbox_max_z_um) == pytest.approx((2.0, 6.0))
    assert (one.bbox_min_y_um, one.bbox_max_y_um) == pytest.approx((1.0, 2.5))
    assert one.equivalent_diameter_um == pytest.approx(np.cbrt(6 * 6.0 / np.pi))


def test_intensity_statistics(opencl_device, boxes):
    two = measure_nuclei(*boxes, (1, 1, 1)).set_index("label").loc[2]
    assert (two.min_intensity, two.max_intensity) == (0, 7)
    assert two.mean_intensity == pytest.approx(3.5)
    assert two.sum_intensity == pytest.approx(28)
    assert two.std_intensity == pytest.approx(np.std(np.arange(8)), rel=1e-4)


def test_missing_label_numbers_are_skipped(opencl_device, boxes):
    labels, intensity = boxes
    labels = np.where(labels == 2, 5, labels).astype(np.uint16)
    assert measure_nuclei(labels, intensity, (1, 1, 1))["label"].tolist() == [1, 5]


def test_no_nuclei_gives_empty_table_with_columns():
    table = measure_nuclei(
        np.zeros((3, 3, 3), np.uint16), np.zeros((3, 3, 3)), (1, 1, 1)
    )
    assert table.empty and table.columns.tolist() == COLUMNS
    assert summarize_stack(table)["nuclei"] == 0


def test_shapes_must_match():
    with pytest.raises(ValueError, match="same shape"):
        measure_nuclei(np.zeros((3, 3, 3)), np.zeros((3, 3, 4)), (1, 1, 1))


def test_summary_quantiles():
    summary = summarize_stack(pd.DataFrame({"volume_um3": np.arange(1.0, 102.0)}))
    assert summary["nuclei"] == 101
    assert summary["volume_um3_median"] == 51
    assert summary["volume_um3_q05"] == 6 and summary["volume_um3_q95"] == 96


def test_collect_keeps_every_row_and_names_samples():
    a = pd.DataFrame({"label": [1, 2], "volume_um3": [1.0, 2.0]})
    empty = pd.DataFrame({"label": [], "volume_um3": []})
    rows, summary = collect_statistics({"a": a, "b": empty, "c": a})
    assert rows["sample"].tolist() == ["a", "a", "c", "c"]
    assert rows.columns[0] == "sample"
    assert summary.set_index("sample")["nuclei"].to_dict() == {"a": 2, "b": 0, "c": 2}


def test_same_table_as_clesperantos_statistics(opencl_device, tiny_stack):
    """The NumPy measurement equals cle.statistics_of_labelled_pixels."""
    import pyclesperanto_prototype as cle

    from nuclei3d.pipeline import run_pipeline

    result = run_pipeline(tiny_stack[0], (1.0, 0.202, 0.202))
    labels, intensity = result["labels"], result["resampled"]
    ours = measure_nuclei(labels, intensity, (1.0, 1.0, 1.0)).set_index("label")
    theirs = pd.DataFrame(cle.statistics_of_labelled_pixels(intensity, labels))
    theirs = theirs[theirs["area"] > 0].set_index("label")
    assert ours.index.tolist() == theirs.index.tolist() and len(ours) > 3
    pairs = {
        "voxel_count": "area",
        "centroid_z_um": "centroid_z",
        "centroid_x_um": "centroid_x",
        "bbox_min_y_um": "bbox_min_y",
        "mean_intensity": "mean_intensity",
        "min_intensity": "min_intensity",
        "max_intensity": "max_intensity",
        "std_intensity": "standard_deviation_intensity",
        "sum_intensity": "sum_intensity",
    }
    for mine, cles in pairs.items():
        np.testing.assert_allclose(ours[mine], theirs[cles], rtol=1e-4, err_msg=mine)
    np.testing.assert_allclose(ours["bbox_max_z_um"], theirs["bbox_max_z"] + 1)


@pytest.mark.parametrize("threads", [2, 3, 7])
def test_slabs_in_threads_give_the_same_table(threads):
    """Nuclei cut by slab borders are put together again: same rows, same sums."""
    rng = np.random.default_rng(1)
    labels = np.zeros((21, 30, 30), np.uint16)
    for label in range(1, 40):
        z, y, x = rng.integers(0, [17, 26, 26])
        labels[z : z + 5, y : y + 4, x : x + 3] = label  # later ones overlap
    labels[labels == 7] = 0  # a missing number
    intensity = rng.integers(0, 255, labels.shape).astype(np.float32)
    one = measure_nuclei(labels, intensity, (1.0, 0.5, 0.5), threads=1)
    many = measure_nuclei(labels, intensity, (1.0, 0.5, 0.5), threads=threads)
    assert 30 < len(one) < 39
    pd.testing.assert_frame_equal(many, one, check_exact=False, rtol=1e-12)
    empty = measure_nuclei(np.zeros_like(labels), intensity, (1, 1, 1), threads=3)
    assert empty.empty and list(empty.columns) == list(one.columns)


def test_read_tables_equals_reading_each_file(tmp_path):
    """Shared and differing headers, an empty table, no newline at the end."""
    from nuclei3d.io import write_table
    from nuclei3d.measure import read_tables

    rng = np.random.default_rng(5)
    paths = {}
    for i in range(7):
        table = pd.DataFrame(
            {"label": np.arange(1, 1 + i % 4), "volume_um3": rng.random(i % 4)}
        )
        if i == 3:
            table["parameter_set"] = "abc123"
        paths[f"s{i}"] = tmp_path / f"s{i}.csv"
        write_table(paths[f"s{i}"], table)
    last = paths["s6"]
    last.write_text(last.read_text().rstrip("\n"))
    tables = read_tables(paths)
    assert list(tables) == list(paths)
    for name, path in paths.items():
        expected = pd.read_csv(path)
        if len(expected):
            pd.testing.assert_frame_equal(tables[name], expected)
        else:
            assert tables[name].columns.tolist() == expected.columns.tolist()
            assert tables[name].empty


@pytest.mark.parametrize("mixed", [False, True])
def test_the_run_table_holds_each_stacks_rows_as_written(tmp_path, mixed):
    """collect_job: every stack's values to the last digit, behind its name; where
    the headers differ (one stack has a parameter set), the union of columns."""
    import logging

    from nuclei3d.io import write_table
    from nuclei3d.measure import collect_job

    rng = np.random.default_rng(8)
    paths, tables = {}, {}
    for i in range(5):
        tables[f"s{i}"] = pd.DataFrame(
            {"label": np.arange(1, 1 + i % 3), "volume_um3": rng.random(i % 3) * 99}
        )
        if mixed and i == 2:
            tables[f"s{i}"]["parameter_set"] = "abc123"
        paths[f"s{i}"] = str(tmp_path / f"s{i}.csv")
        write_table(paths[f"s{i}"], tables[f"s{i}"])
    out, summary = tmp_path / "label_statistics.csv", tmp_path / "summary.csv"
    collect_job(paths, str(out), str(summary), logging.getLogger("t"))
    rows = pd.read_csv(out, float_precision="round_trip")
    expected, _ = collect_statistics(tables)
    assert rows.columns.tolist() == expected.columns.tolist()
    pd.testing.assert_frame_equal(rows, expected, check_dtype=False)
    if not mixed:  # the lines themselves, behind the sample's name
        lines = out.read_text().splitlines()[1:]
        assert lines == [
            f"{name},{line}"
            for name, path in paths.items()
            for line in Path(path).read_text().splitlines()[1:]
        ]
    assert pd.read_csv(summary)["nuclei"].tolist() == [0, 1, 2, 0, 1]
