"""Microscope files: each format written by an independent writer, read back.

OME-Zarr and OME-TIFF are written with bioio's own writers (bioio-ome-zarr,
bioio-ome-tiff), CZI with Zeiss' pylibCZIrw; each with a known voxel size,
channels, scenes and time points. ND2 and LIF have no open writer: they are read
through the same bioio interface, but not tested here (README).
"""

import numpy as np
import pandas as pd
import pytest
from bioio_base.types import PhysicalPixelSizes

from nuclei3d import io
from nuclei3d.demo import make_demo_stack
from nuclei3d.formats import LayoutCache, describe, expand_sheet, read, read_any

from .conftest import make_workdir, run_snakemake, stack_log

SHAPE = (30, 150, 150)
VOXEL = (1.0, 0.202, 0.202)
COARSE = (2.0, 0.404, 0.404)  # the second OME-TIFF scene: half the samples


def demo(seed, shape=SHAPE, voxel=VOXEL):
    image, _ = make_demo_stack(shape=shape, voxel_size_um=voxel, n_nuclei=8, seed=seed)
    return image


def write_ome_zarr(path, data, voxel, channels):
    """(T, C, Z, Y, X) data with bioio-ome-zarr's writer."""
    from bioio_ome_zarr.writers import Channel, OMEZarrWriter

    writer = OMEZarrWriter(
        str(path),
        level_shapes=data.shape,
        dtype=data.dtype,
        zarr_format=2,
        axes_names=["t", "c", "z", "y", "x"],
        axes_types=["time", "channel", "space", "space", "space"],
        axes_units=[None, None, "micrometer", "micrometer", "micrometer"],
        physical_pixel_size=[1.0, 1.0, *voxel],
        channels=[Channel(label=name, color="FFFFFF") for name in channels],
    )
    writer.write_full_volume(data)


def write_ome_tiff(path, scenes):
    """Scenes [(ZYX data, voxel)] with bioio-ome-tiff's writer."""
    from bioio_ome_tiff.writers import OmeTiffWriter

    OmeTiffWriter.save(
        [data for data, _ in scenes],
        str(path),
        dim_order=["ZYX"] * len(scenes),
        physical_pixel_sizes=[PhysicalPixelSizes(*voxel) for _, voxel in scenes],
        image_name=[f"scene {i}" for i in range(len(scenes))],
    )


def write_czi(path, data, voxel, channels):
    """(C, Z, Y, X) data with pylibCZIrw (sizes in metres in CZI metadata)."""
    from pylibCZIrw import czi as pyczi

    with pyczi.create_czi(str(path), exist_ok=True) as czi:
        for c in range(data.shape[0]):
            for z in range(data.shape[1]):
                czi.write(data=data[c, z][..., None], plane={"C": c, "Z": z, "T": 0})
        czi.write_metadata(
            document_name=path.stem,
            channel_names=dict(enumerate(channels)),
            scale_z=voxel[0] * 1e-6,
            scale_y=voxel[1] * 1e-6,
            scale_x=voxel[2] * 1e-6,
        )


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """One file per format; their contents for comparison."""
    root = tmp_path_factory.mktemp("formats")
    frames = np.stack([np.stack([demo(t), demo(10 + t)]) for t in range(3)])
    write_ome_zarr(root / "embryo.ome.zarr", frames, VOXEL, ["dapi", "gfp"])
    fine, coarse = demo(20), demo(21, shape=(15, 75, 75), voxel=COARSE)
    write_ome_tiff(root / "scenes.ome.tiff", [(fine, VOXEL), (coarse, COARSE)])
    channels = np.stack([demo(30), demo(31)]).astype(np.uint16)
    write_czi(root / "zeiss.czi", channels, VOXEL, ["dapi", "h2b"])
    plain = demo(40)
    io.write_stack(root / "plain.tif", plain, VOXEL)
    contents = {
        "zarr": frames,
        "scenes": (fine, coarse),
        "czi": channels,
        "plain": plain,
    }
    return root, contents


def test_ome_zarr_time_points_and_channels(files):
    root, contents = files
    path = root / "embryo.ome.zarr"
    layout = describe(path)
    assert layout.timepoints == 3 and layout.channels == ("dapi", "gfp")
    image, voxel = read(path, channel="gfp", timepoint=2)
    np.testing.assert_array_equal(image, contents["zarr"][2, 1])
    assert voxel == pytest.approx(VOXEL)
    image, _ = read(path, channel=0, timepoint=1)
    np.testing.assert_array_equal(image, contents["zarr"][1, 0])


def test_ome_tiff_scenes_with_their_own_voxel_sizes(files):
    root, contents = files
    path = root / "scenes.ome.tiff"
    assert len(describe(path).scenes) == 2
    for scene, (data, voxel) in enumerate(
        zip(contents["scenes"], (VOXEL, COARSE), strict=True)
    ):
        image, found = read(path, scene=scene)
        np.testing.assert_array_equal(image, data)
        assert found == pytest.approx(voxel)


def test_czi_channels_and_voxel_size_in_micrometres(files):
    root, contents = files
    path = root / "zeiss.czi"
    assert describe(path).channels == ("dapi", "h2b")
    image, voxel = read(path, channel="h2b")
    np.testing.assert_array_equal(image, contents["czi"][1])
    assert voxel == pytest.approx(VOXEL)


def test_plain_tiff_reads_as_before(files):
    root, contents = files
    image, voxel = read_any(root / "plain.tif")
    np.testing.assert_array_equal(image, contents["plain"])
    assert voxel == pytest.approx(VOXEL)


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("embryo.ome.zarr", {"channel": 0}, r"holds 3 time points; name one"),
        ("embryo.ome.zarr", {"timepoint": 0}, r"has 2 channels \(dapi, gfp\)"),
        ("embryo.ome.zarr", {"timepoint": 5, "channel": 0}, r"no time point 5"),
        ("embryo.ome.zarr", {"timepoint": 0, "channel": "rfp"}, r"no channel 'rfp'"),
        ("scenes.ome.tiff", {}, r"holds 2 scenes"),
        ("scenes.ome.tiff", {"scene": "7"}, r"has no scene '7'"),
        ("plain.tif", {"timepoint": 1}, r"plain TIFF has no scenes or time points"),
        ("plain.tif", {"channel": "dapi"}, r"channels have no names"),
    ],
)
def test_what_a_row_names_must_be_in_the_file(files, name, kwargs, message):
    root, _ = files
    with pytest.raises(io.StackError, match=rf"{name}: .*{message}"):
        read_any(root / name, **kwargs)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("broken.czi", b"ZISRAWFILE" + bytes(200), r"not a readable CZI file"),
        ("broken.ome.tiff", b"II*\x00" + bytes(50), r"not a readable OME-TIFF file"),
        ("broken.nd2", b"not an nd2 file", r"not a readable ND2 file"),
        ("broken.lif", b"not a lif file", r"not a readable LIF file"),
        ("missing.czi", None, r"file not found"),
    ],
)
def test_a_bad_file_of_each_format_is_one_clear_error(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(io.StackError, match=rf"{name}: {message}"):
        read_any(path)


def test_a_bad_ome_zarr_is_one_clear_error(tmp_path):
    path = tmp_path / "empty.ome.zarr"
    path.mkdir()
    with pytest.raises(io.StackError, match=r"empty.ome.zarr: not a readable OME-Zarr"):
        read_any(path)


def test_rows_expand_into_one_stack_per_time_point_and_scene(files, tmp_path):
    root, _ = files
    rows = [
        {"sample": "emb", "image": str(root / "embryo.ome.zarr"), "channel": "gfp"},
        {"sample": "one", "image": str(root / "embryo.ome.zarr"), "timepoint": 1},
        {"sample": "sc", "image": str(root / "scenes.ome.tiff")},
        {"sample": "plain", "image": str(root / "plain.tif")},
        {"sample": "gone", "image": str(root / "gone.czi")},
    ]
    cache = LayoutCache(tmp_path / "layouts.json")
    layout_of = lambda p: cache.layout(p) if (root / p).exists() else None  # noqa: E731
    expanded = pd.DataFrame(expand_sheet(rows, layout_of))
    assert expanded["sample"].tolist() == [
        "emb_t000",
        "emb_t001",
        "emb_t002",
        "one",
        "sc_s00",
        "sc_s01",
        "plain",
        "gone",
    ]
    assert expanded["timepoint"].tolist()[:4] == [0, 1, 2, 1]
    assert (expanded["channel"][:3] == "gfp").all()
    cache.save()
    # The two files bioio reads are kept (plain TIFFs and missing files are not).
    assert len(LayoutCache(tmp_path / "layouts.json").entries) == 2


def test_kept_layouts_are_used_until_the_file_changes(files, tmp_path, monkeypatch):
    root, _ = files
    cache = LayoutCache(tmp_path / "layouts.json")
    layout = cache.layout(root / "scenes.ome.tiff")
    cache.save()
    kept = LayoutCache(tmp_path / "layouts.json")

    def no_reading(path):
        raise AssertionError(f"{path} opened again")

    monkeypatch.setattr("nuclei3d.formats.describe", no_reading)
    assert kept.layout(root / "scenes.ome.tiff") == layout


@pytest.mark.workflow
def test_a_sheet_mixing_formats_runs_end_to_end(files, tmp_path):
    root, _ = files
    workdir = make_workdir(tmp_path, ())
    sheet = [
        "sample\timage\tchannel\tscene\ttimepoint",
        f"embryo\t{root / 'embryo.ome.zarr'}\tgfp\t\t",
        f"scenes\t{root / 'scenes.ome.tiff'}\t\t\t",
        f"zeiss\t{root / 'zeiss.czi'}\t1\t\t",
        f"plain\t{root / 'plain.tif'}\t\t\t",
    ]
    (workdir / "config/samples.tsv").write_text("\n".join(sheet) + "\n")
    run_snakemake(workdir)
    results = workdir / "results"
    stacks = ["embryo_t000", "embryo_t001", "embryo_t002", "scenes_s00", "scenes_s01"]
    stacks += ["zeiss", "plain"]
    summary = pd.read_csv(results / "summary.csv")
    assert summary["sample"].tolist() == stacks
    assert (summary["nuclei"] > 0).all()
    for sample in stacks:
        # 1 µm voxels from each file's own voxel size: 30 x 30.3 x 30.3 µm
        resampled, voxel = io.read_stack(results / sample / "resampled.tif")
        assert resampled.shape == (30, 30, 30), sample
        assert voxel == pytest.approx((1.0, 1.0, 1.0))
    log = stack_log(results, "resample", "scenes_s01")
    assert "voxel (2.0, 0.404, 0.404) µm" in log


def test_segmentation_needs_one_shape(tmp_path):
    from nuclei3d.ome_zarr import write_segmentation

    with pytest.raises(ValueError, match=r"same shape"):
        write_segmentation(
            tmp_path / "x.ome.zarr", np.zeros((2, 3, 4)), np.zeros((2, 3, 5)), VOXEL
        )


@pytest.mark.workflow
def test_labels_as_ome_zarr_open_with_their_image(tmp_path):
    """config `ome_zarr: true`: image and labels in one NGFF 0.4 OME-Zarr."""
    import bioio_ome_zarr
    import zarr
    from bioio import BioImage

    workdir = make_workdir(tmp_path, ("s1",), ome_zarr=True)
    run_snakemake(workdir)
    results = workdir / "results"
    path = results / "s1" / "segmentation.ome.zarr"
    resampled, voxel = io.read_stack(results / "s1" / "resampled.tif")
    labels, _ = io.read_stack(results / "s1" / "labels.tif")
    image = BioImage(path, reader=bioio_ome_zarr.Reader)
    np.testing.assert_array_equal(image.get_image_data("ZYX"), resampled)
    assert tuple(image.physical_pixel_sizes) == pytest.approx(voxel)
    group = zarr.open_group(str(path), mode="r")
    assert group["labels"].attrs["labels"] == ["nuclei"]
    nuclei = group["labels/nuclei"]
    assert nuclei.attrs["image-label"]["source"] == {"image": "../../"}
    (dataset,) = nuclei.attrs["multiscales"][0]["datasets"]
    assert dataset["coordinateTransformations"][0]["scale"] == pytest.approx(voxel)
    np.testing.assert_array_equal(nuclei[dataset["path"]][:], labels)
    # read back as an image of its own too, through the same reader
    as_image = BioImage(path / "labels" / "nuclei", reader=bioio_ome_zarr.Reader)
    np.testing.assert_array_equal(as_image.get_image_data("ZYX"), labels)
