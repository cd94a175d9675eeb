import numpy as np
import pytest

from nuclei3d.overlay import label_colors, overlay_images, to_grey

from .conftest import ball


@pytest.fixture
def scene():
    shape = (45, 30, 20)  # distinct sizes: catches an axis mix-up
    labels = np.zeros(shape, np.uint16)
    labels[ball(shape, (22, 15, 10), 6)] = 1
    intensity = np.where(labels > 0, 100, 10).astype(np.float32)
    return intensity, labels


def test_outline_slices_walk_z(opencl_device, scene):
    pictures = overlay_images(*scene, every_n_slices=20)
    outlines = sorted(k for k in pictures if k.startswith("outlines"))
    # z has 45 slices: 0, 20, 40 (the seed walked shape[2] instead).
    assert outlines == ["outlines_z0000", "outlines_z0020", "outlines_z0040"]
    assert pictures["outlines_z0020"].shape == (30, 20, 3)


def test_outlines_drawn_on_the_nucleus_border_only(opencl_device, scene):
    intensity, labels = scene
    picture = overlay_images(intensity, labels, every_n_slices=22)["outlines_z0022"]
    coloured = np.any(picture != picture[..., :1], axis=-1)  # non-grey pixels
    inside = labels[22] > 0
    assert coloured.any()
    assert not coloured[~inside].any()
    assert not coloured[15, 10]  # centre of the nucleus stays grey


def test_projections_have_true_orientation(opencl_device, scene):
    pictures = overlay_images(*scene)
    assert pictures["projection_z_intensity"].shape == (30, 20, 3)
    assert pictures["projection_y_intensity"].shape == (45, 20, 3)
    assert pictures["projection_x_intensity"].shape == (45, 30, 3)
    assert pictures["projection_x_labels"][22, 15].any()
    assert not pictures["projection_x_labels"][0, 0].any()


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


def test_outlines_are_the_seeds_label_edges(opencl_device):
    """The host outlines equal cle.detect_label_edges on each 2D slice (the seed's
    way), labels at the image border and touching labels included."""
    import pyclesperanto_prototype as cle

    from nuclei3d.overlay import outlines

    rng = np.random.default_rng(3)
    for _ in range(4):
        blocks = rng.integers(0, 5, (9, 11)).astype(np.uint16)
        labels = np.kron(blocks, np.ones((4, 3), np.uint16))[:33, :31]
        expected = np.asarray(cle.pull(cle.detect_label_edges(cle.push(labels))))
        assert outlines(labels).any()
        np.testing.assert_array_equal(outlines(labels), expected.astype(bool))
