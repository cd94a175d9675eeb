import numpy as np
import pytest
import tifffile

from nuclei3d import io


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
