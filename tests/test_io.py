import os
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from nuclei3d import io

from .conftest import REPO


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.uint32])
def test_write_read_keeps_data_and_voxel_size(tmp_path, dtype):
    image = np.arange(2 * 3 * 4, dtype=dtype).reshape(2, 3, 4)
    path = tmp_path / "stack.tif"
    io.write_stack(path, image, (1.5, 0.25, 0.125))
    read, voxel_size = io.read_stack(path)
    np.testing.assert_array_equal(read, image)
    assert read.dtype == dtype
    assert voxel_size == pytest.approx((1.5, 0.25, 0.125))
    with tifffile.TiffFile(path) as tif:  # Fiji-readable metadata, by type
        assert tif.is_imagej == (dtype != np.uint32)
        assert tif.is_ome == (dtype == np.uint32)
    assert [p.name for p in tmp_path.iterdir()] == ["stack.tif"]


def test_reads_fiji_style_imagej_metadata_in_nm(tmp_path):
    path = tmp_path / "fiji.tif"
    tifffile.imwrite(
        path,
        np.zeros((2, 4, 4), np.uint8),
        imagej=True,
        resolution=(1 / 202.0, 1 / 202.0),
        metadata={"spacing": 1000.0, "unit": "nm", "axes": "ZYX"},
    )
    assert io.read_voxel_size(path) == pytest.approx((1.0, 0.202, 0.202))


def test_reads_ome_physical_size(tmp_path):
    path = tmp_path / "ome.tif"
    tifffile.imwrite(
        path,
        np.zeros((2, 4, 4), np.uint16),
        photometric="minisblack",
        ome=True,
        metadata={
            "axes": "ZYX",
            "PhysicalSizeZ": 2.0,
            "PhysicalSizeY": 0.5,
            "PhysicalSizeX": 0.4,
        },
    )
    assert io.read_voxel_size(path) == pytest.approx((2.0, 0.5, 0.4))


def test_plain_tiff_has_no_voxel_size(tmp_path):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, np.zeros((2, 4, 4), np.uint8))
    assert io.read_stack(path)[1] is None


def test_missing_file_is_named(tmp_path):
    with pytest.raises(io.StackError, match=r"nothing\.tif: file not found"):
        io.read_stack(tmp_path / "nothing.tif")


def test_not_a_tiff_is_named(tmp_path):
    path = tmp_path / "notes.tif"
    path.write_text("hello")
    with pytest.raises(io.StackError, match=r"notes\.tif: not a readable TIFF"):
        io.read_stack(path)


def test_2d_image_is_rejected_with_shape(tmp_path):
    path = tmp_path / "flat.tif"
    tifffile.imwrite(path, np.zeros((4, 5), np.uint8))
    with pytest.raises(io.StackError, match=r"flat\.tif: expected one 3D.*\(4, 5\)"):
        io.read_stack(path)


def test_write_stack_rejects_2d(tmp_path):
    with pytest.raises(ValueError, match=r"shape \(4, 5\)"):
        io.write_stack(tmp_path / "x.tif", np.zeros((4, 5)), (1, 1, 1))


def test_failed_write_leaves_nothing(tmp_path):
    path = tmp_path / "out.tif"
    with pytest.raises(RuntimeError), io.atomic_path(path) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("crash mid-write")
    assert list(tmp_path.iterdir()) == []


def test_the_next_write_removes_what_a_killed_write_left(tmp_path):
    """A process killed mid-write (no exception, no clean-up) leaves its
    temporary; writing the same output again removes it, and only its own."""
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, sys; from nuclei3d import io\n"
            "with io.atomic_path(sys.argv[1]) as tmp:\n"
            "    tmp.write_bytes(b'half'); os._exit(9)\n"
            "",
            str(tmp_path / "plot.png"),
        ],
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert killed.returncode == 9
    (tmp_path / ".plot.png.other.part").mkdir()  # a killed atomic_directory
    (tmp_path / ".other.png.abc.part").write_bytes(b"another output's")
    assert len(list(tmp_path.glob(".plot.png.*.part"))) == 2
    with io.atomic_path(tmp_path / "plot.png") as tmp:
        tmp.write_bytes(b"done")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [".other.png.abc.part", "plot.png"]


def test_atomic_directory_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "pictures"
    with pytest.raises(RuntimeError), io.atomic_directory(target) as folder:
        (folder / "a.png").write_bytes(b"x")
        raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []
    target.mkdir()  # Snakemake may have created it empty
    with io.atomic_directory(target) as folder:
        (folder / "a.png").write_bytes(b"x")
    assert [p.name for p in target.iterdir()] == ["a.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["pictures"]


def test_write_table_is_atomic_csv(tmp_path):
    import pandas as pd

    io.write_table(tmp_path / "t.csv", pd.DataFrame({"a": [1, 2]}))
    assert (tmp_path / "t.csv").read_text() == "a\n1\n2\n"


@pytest.mark.parametrize(
    ("largest", "dtype"), [(0, np.uint16), (65535, np.uint16), (65536, np.uint32)]
)
def test_label_dtype_fits_largest_label(largest, dtype):
    assert io.as_label_dtype(np.array([0, largest], np.uint32)).dtype == dtype


@pytest.fixture
def damaged(tmp_path):
    """A good ImageJ stack, and copies cut at several points."""
    path = tmp_path / "good.tif"
    io.write_stack(path, np.full((20, 60, 60), 7, np.uint8), (1, 1, 1))
    data = path.read_bytes()
    cuts = {}
    for fraction in (0.5, 0.9, 0.999):
        cut = tmp_path / f"cut{fraction}.tif"
        cut.write_bytes(data[: int(len(data) * fraction)])
        cuts[fraction] = cut
    return cuts


@pytest.mark.parametrize("fraction", [0.5, 0.9, 0.999])
def test_truncated_tiff_is_refused(damaged, fraction):
    with pytest.raises(
        io.StackError, match=r"cut.*\.tif: (truncated or corrupt|not a)"
    ):
        io.read_stack(damaged[fraction])


def test_garbage_after_tiff_magic_is_refused(tmp_path):
    path = tmp_path / "garbage.tif"
    path.write_bytes(b"II*\x00" + np.random.default_rng(0).bytes(1000))
    with pytest.raises(io.StackError, match=r"garbage\.tif: not a readable TIFF"):
        io.read_stack(path)


@pytest.fixture
def multichannel(tmp_path):
    stack = np.stack([np.full((4, 8, 9), c, np.uint16) for c in range(3)], axis=1)
    path = tmp_path / "zcyx.tif"
    tifffile.imwrite(path, stack, imagej=True, metadata={"axes": "ZCYX"})
    rgb = tmp_path / "rgb.tif"
    tifffile.imwrite(rgb, np.zeros((4, 8, 9, 3), np.uint8), photometric="rgb")
    return path, rgb


def test_multichannel_needs_a_channel(multichannel):
    path, rgb = multichannel
    with pytest.raises(io.StackError, match=r"zcyx\.tif: has 3 channels \(axes ZCYX"):
        io.read_stack(path)
    with pytest.raises(
        io.StackError, match=r"rgb\.tif: has 3 channels.*`channel` column"
    ):
        io.read_stack(rgb)


@pytest.mark.parametrize("channel", [0, 2])
def test_channel_picks_one(multichannel, channel):
    image, _ = io.read_stack(multichannel[0], channel=channel)
    assert image.shape == (4, 8, 9)
    assert (image == channel).all()


def test_channel_out_of_range(multichannel):
    with pytest.raises(io.StackError, match=r"`channel` 3 out of range.*0 to 2"):
        io.read_stack(multichannel[0], channel=3)


def test_channel_on_single_channel_file(tmp_path):
    path = tmp_path / "one.tif"
    io.write_stack(path, np.zeros((3, 4, 5), np.uint8), (1, 1, 1))
    with pytest.raises(io.StackError, match=r"no single channel axis"):
        io.read_stack(path, channel=0)


def test_time_series_is_refused_with_axes(tmp_path):
    path = tmp_path / "tzyx.tif"
    tifffile.imwrite(
        path, np.zeros((2, 3, 4, 5), np.uint8), imagej=True, metadata={"axes": "TZYX"}
    )
    with pytest.raises(io.StackError, match=r"tzyx\.tif: expected one 3D.*axes TZYX"):
        io.read_stack(path)


def test_nan_and_inf_are_counted(tmp_path):
    image = np.ones((3, 4, 5), np.float32)
    image[0, 0, :2] = np.nan
    image[1, 1, 1] = np.inf
    path = tmp_path / "bad.tif"
    io.write_stack(path, image, (1, 1, 1))
    with pytest.raises(io.StackError, match=r"bad\.tif: holds 2 NaN and 1 infinite"):
        io.read_stack(path)


def test_written_files_and_folders_follow_the_umask(tmp_path):
    """Results on a shared cluster must be readable as any other file is."""
    old = os.umask(0o022)
    try:
        io.write_stack(tmp_path / "s.tif", np.zeros((2, 2, 2), np.uint8), (1, 1, 1))
        with io.atomic_directory(tmp_path / "pictures") as folder:
            (folder / "a.png").write_bytes(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "s.tif").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "pictures").stat().st_mode & 0o777 == 0o755
