import numpy as np
import pytest

from nuclei3d.overlay import (
    draw_scale_bar,
    enlarge,
    label_colors,
    outline_picture,
    overlay_images,
    overlay_layers,
    scale_bar_um,
    slice_panels,
    to_grey,
)

from .conftest import ball


@pytest.fixture
def scene():
    shape = (45, 30, 20)  # distinct sizes: catches an axis mix-up
    labels = np.zeros(shape, np.uint16)
    labels[ball(shape, (22, 15, 10), 6)] = 1
    intensity = np.where(labels > 0, 100, 10).astype(np.float32)
    return intensity, labels


def test_outline_slices_walk_z(scene):
    panels = slice_panels(*scene, every_n_slices=20, voxel_um=1.0, min_long_side=512)
    # z has 45 slices: 0, 20, 40 (the seed walked shape[2] instead).
    assert list(panels) == [0, 20, 40]


def test_pictures_are_enlarged_without_smoothing_to_512_pixels(scene):
    panels = slice_panels(*scene, every_n_slices=20, voxel_um=1.0, min_long_side=512)
    # (30, 20) slices, 18 times: the longer side 540 >= 512; 17 times is 510.
    assert panels[20].shape == (30 * 18, 20 * 18, 3)
    intensity, labels = scene
    picture = outline_picture(intensity[20], labels[20] * 0, 18, low=0, high=100)
    blocks = picture.reshape(30, 18, 20, 18, 3)
    assert (blocks == blocks[:, :1, :, :1]).all()  # each pixel a 18 x 18 block


def test_outline_pixels_are_the_nucleus_border_pixels(scene):
    intensity, labels = scene
    picture = outline_picture(intensity[22], labels[22], 5, low=0, high=100)
    coloured = np.any(picture != picture[..., :1], axis=-1)  # non-grey pixels
    np.testing.assert_array_equal(coloured, border_pixels(enlarge(labels[22], 5)))
    assert coloured.any() and not coloured[15 * 5, 10 * 5]


def test_scale_bar_is_as_long_as_it_says():
    picture = np.zeros((520, 780, 3), np.uint8)
    length_um, length = draw_scale_bar(picture, 1 / 26)  # 780 px = 30 µm
    assert length_um == 5.0 and length == 130
    white = (picture == 255).all(axis=-1)
    rows = [row for row in white if row.sum() == length]
    assert rows, "no white bar of the stated length"
    assert white[:, : 780 // 2].sum() == 0  # in the lower right


@pytest.mark.parametrize(("width_um", "bar"), [(80, 10), (30, 5), (1000, 200)])
def test_scale_bar_lengths_are_round(width_um, bar):
    assert scale_bar_um(width_um) == bar


def test_overlay_images_are_a_contact_sheet_and_projections(opencl_device, scene):
    pictures = overlay_images(*scene, every_n_slices=20, voxel_um=0.5)
    assert set(pictures) == {"contact_sheet", "projections"}
    sheet = pictures["contact_sheet"]
    # three 540 x 360 panels in a 2 x 2 grid, titles above them
    assert sheet.shape[0] > 2 * 540 and sheet.shape[1] > 2 * 360
    # six panels in 2 rows of 3, 12 times enlarged: the stack's longest side,
    # 45 (z), becomes 540; the widest panel is 30 * 12 = 360
    projections = pictures["projections"]
    assert projections.shape[0] > 2 * 540 and projections.shape[1] > 3 * 360


def test_projections_have_true_orientation(opencl_device, scene):
    layers = overlay_layers(*scene)
    intensity = layers["intensity_projections"]
    assert intensity["z"].shape == (30, 20)
    assert intensity["y"].shape == (45, 20)
    assert intensity["x"].shape == (45, 30)
    assert layers["label_projections"]["x"][22, 15]
    assert not layers["label_projections"]["x"][0, 0]


def test_mismatched_shapes_are_rejected():
    with pytest.raises(ValueError, match=r"same shape"):
        overlay_images(np.zeros((2, 2, 2)), np.zeros((2, 2, 3)))


def test_every_n_slices_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        overlay_images(np.zeros((2, 2, 2)), np.zeros((2, 2, 2)), every_n_slices=0)


def test_label_colors_background_black_labels_coloured():
    rgb = label_colors(np.array([[0, 1, 2, 300]]))
    assert rgb[0, 0].tolist() == [0, 0, 0]
    assert (rgb[0, 1:] >= 64).all()


def test_to_grey_spans_full_range():
    grey = to_grey(np.linspace(0, 1, 1000).reshape(10, 100))
    assert grey.min() == 0 and grey.max() == 255 and grey.shape == (10, 100, 3)


def border_pixels(labels):
    """Labelled pixels with a 4-neighbour of another label (none past the edge)."""
    padded = np.pad(labels, 1, mode="edge")
    centre = padded[1:-1, 1:-1]
    different = np.zeros(labels.shape, bool)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        different |= (
            padded[dy : dy + labels.shape[0], dx : dx + labels.shape[1]] != centre
        )
    return different & (labels > 0)


def test_outlines_are_the_labelled_pixels_on_a_border():
    """Touching labels and labels at the image's edge included."""
    from nuclei3d.overlay import outlines

    rng = np.random.default_rng(3)
    for _ in range(4):
        blocks = rng.integers(0, 5, (9, 11)).astype(np.uint16)
        labels = np.kron(blocks, np.ones((4, 3), np.uint16))[:33, :31]
        assert outlines(labels).any()
        np.testing.assert_array_equal(outlines(labels), border_pixels(labels))
