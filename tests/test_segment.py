import numpy as np
import pytest

from nuclei3d.segment import segment_nuclei

from .conftest import assert_same_arithmetic, ball


def two_nuclei(touching):
    shape = (40, 40, 60)
    gap = 12 if touching else 20
    image = np.zeros(shape, np.float32)
    for x in (20, 20 + gap):
        image[ball(shape, (20, 20, x), 7)] = 100
    return image


@pytest.mark.parametrize("touching", [False, True])
def test_two_nuclei_give_two_labels(opencl_device, touching):
    labels = segment_nuclei(
        two_nuclei(touching), 1.0, spot_sigma_um=3, outline_sigma_um=1
    )
    assert labels.max() == 2
    assert labels.dtype == np.uint16
    assert labels[20, 20, 20] != labels[20, 20, 32 if touching else 40]
    assert labels[0, 0, 0] == 0


def test_sigmas_are_in_micrometres(opencl_device):
    image = two_nuclei(False)[::2, ::2, ::2]  # same scene, 2 µm voxels
    labels = segment_nuclei(image, 2.0, spot_sigma_um=3, outline_sigma_um=1)
    assert labels.max() == 2


def test_empty_image_gives_no_nuclei(opencl_device):
    assert segment_nuclei(np.zeros((10, 10, 10), np.float32), 1.0).max() == 0


@pytest.mark.parametrize("bad", [{"spot_sigma_um": 0}, {"outline_sigma_um": -1}])
def test_non_positive_sigma_is_rejected(bad):
    with pytest.raises(ValueError, match="must be positive"):
        segment_nuclei(np.zeros((4, 4, 4)), 1.0, **bad)


def noisy_blobs(seed, shape=(24, 48, 48), blobs=6):
    """Random bright balls over noise: many seeds, touching regions."""
    rng = np.random.default_rng(seed)
    image = rng.normal(10, 5, shape).astype(np.float32)
    for _ in range(blobs):
        centre = [int(rng.integers(4, n - 4)) for n in shape]
        image[ball(shape, centre, int(rng.integers(3, 8)))] += 100
    return image


@pytest.mark.parametrize("steps_per_check", [1, 2, 8])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_voronoi_otsu_labeling_equals_pyclesperanto(
    opencl_device, monkeypatch, seed, steps_per_check
):
    """Same labels as cle's, wherever the loops stop between two flag reads."""
    import pyclesperanto_prototype as cle

    from nuclei3d import segment

    monkeypatch.setattr(segment, "STEPS_PER_CHECK", steps_per_check)
    image = cle.push(noisy_blobs(seed))
    for spot, outline in [(2.0, 1.0), (1.0, 0.5), (3.0, 2.0)]:
        expected = cle.pull(cle.voronoi_otsu_labeling(image, None, spot, outline))
        labels = cle.pull(segment.voronoi_otsu_labeling(image, spot, outline))
        assert labels.dtype == expected.dtype
        np.testing.assert_array_equal(labels, expected)
        assert labels.max() > 1


def test_growth_by_minimum_labels_26_connected_components(opencl_device):
    """MIN_BOX from pixel indices gives one value per component (scipy's)."""
    import pyclesperanto_prototype as cle
    from scipy import ndimage

    from nuclei3d import segment

    rng = np.random.default_rng(4)
    binary = rng.random((12, 30, 30)) > 0.8  # many odd-shaped components
    seeds = cle.create(binary.shape)
    cle.set_non_zero_pixels_to_pixel_index(cle.push(binary.astype(np.float32)), seeds)
    result, steps = segment.grow_until_stable(
        seeds, cle.create(binary.shape), segment.MIN_BOX
    )
    grown = cle.pull(result)
    components, count = ndimage.label(binary, structure=np.ones((3, 3, 3)))
    assert steps > segment.STEPS_PER_CHECK  # several flag reads
    assert (grown[~binary] == 0).all()
    pairs = np.unique(np.stack([components[binary], grown[binary]]), axis=1)
    assert pairs.shape[1] == count  # one value per component, none shared
    assert len(np.unique(pairs[1])) == count


def test_growth_rejects_other_dtypes(opencl_device):
    import pyclesperanto_prototype as cle

    from nuclei3d import segment

    image = cle.create((2, 2, 2), np.uint8)
    with pytest.raises(TypeError, match="float32"):
        segment.grow_until_stable(image, image, segment.MIN_BOX)


@pytest.mark.parametrize(
    "make",
    [
        lambda rng: rng.gamma(2, 10, (86, 80, 79)),  # a demo stack's size
        lambda rng: rng.gamma(2, 10, (5, 7, 3)) - 15,  # negative values
        lambda rng: np.round(rng.gamma(2, 10, (30, 30, 30))),  # on bin edges
        lambda rng: noisy_blobs(4),
        lambda rng: np.full((6, 6, 6), 3.0),  # one value: nothing above it
    ],
)
def test_threshold_otsu_equals_pyclesperanto(opencl_device, make):
    import pyclesperanto_prototype as cle

    from nuclei3d.segment import threshold_otsu

    image = cle.push(make(np.random.default_rng(0)).astype(np.float32))
    expected = cle.pull(cle.threshold_otsu(image))
    out = cle.create(image)
    threshold_otsu(image, out)
    np.testing.assert_array_equal(cle.pull(out), expected)
    assert 0 < expected.sum() < expected.size or np.ptp(expected) == 0


def test_threshold_otsu_rejects_other_dtypes(opencl_device):
    import pyclesperanto_prototype as cle

    from nuclei3d.segment import threshold_otsu

    image = cle.create((4, 4, 4), np.uint8)
    with pytest.raises(TypeError, match="float32"):
        threshold_otsu(image, cle.create(image))


def sparse_points(seed, shape, count):
    """Random voxels, with clusters and neighbours across row and slice ends."""
    rng = np.random.default_rng(seed)
    image = np.zeros(shape, np.float32)
    image.flat[rng.choice(image.size, count, replace=False)] = 1
    image[2:4, 3:5, 4] = 1  # a small cluster
    image[1, 2, -1] = image[1, 3, 0] = 1  # flat neighbours, far apart in x
    image[0, -1, 0] = image[1, 0, 0] = 1  # flat neighbours, far apart in y
    image[-1, -1, -1] = image[-2, -2, -2] = 1  # diagonal, at the far corner
    return image


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_seed_components_equal_pyclesperanto(opencl_device, seed):
    import pyclesperanto_prototype as cle

    from nuclei3d.segment import seed_components

    image = sparse_points(seed, (9, 11, 13), 150)
    expected = cle.pull(cle.connected_components_labeling_box(cle.push(image)))
    indices, labels = seed_components(np.flatnonzero(image)[::-1], image.shape)
    got = np.zeros(image.shape, np.float32)
    got.flat[indices] = labels
    np.testing.assert_array_equal(got, expected)
    assert 10 < labels.max() < 150  # some points joined, most alone


@pytest.mark.parametrize("capacity", [1 << 20, 3])  # 3: too few, cle's way
def test_label_seed_points_equals_pyclesperanto(opencl_device, monkeypatch, capacity):
    import pyclesperanto_prototype as cle

    from nuclei3d import segment

    monkeypatch.setattr(segment, "SEED_CAPACITY", capacity)
    spots = sparse_points(3, (12, 20, 30), 400)
    mask = (np.random.default_rng(4).random(spots.shape) < 0.7).astype(np.float32)
    a, b = cle.push(spots), cle.push(mask)
    expected = cle.pull(cle.connected_components_labeling_box(cle.binary_and(a, b)))
    out = cle.create(a)
    count = segment.label_seed_points(a, b, out)
    assert (count is not None) == (capacity > 1000)
    if count is not None:
        np.testing.assert_array_equal(cle.pull(out), expected)
        assert count == expected.max() > 10
    image = cle.push(noisy_blobs(5))
    reference = cle.pull(cle.voronoi_otsu_labeling(image, None, 2, 1))
    for compact, dtype in [(False, np.uint32), (True, np.uint16)]:
        labels = segment.voronoi_otsu_labeling(image, 2, 1, compact=compact)
        assert labels.dtype == dtype
        np.testing.assert_array_equal(cle.pull(labels), reference)


def test_no_seed_points_give_no_labels(opencl_device):
    import pyclesperanto_prototype as cle

    from nuclei3d.segment import label_seed_points

    zeros = cle.push(np.zeros((4, 5, 6), np.float32))
    out = cle.push(np.full((4, 5, 6), 7, np.float32))
    assert label_seed_points(zeros, zeros, out) == 0
    assert not cle.pull(out).any()


@pytest.mark.parametrize("sigma", [0.3, 1.0, 2.5, 3.0])
def test_gaussian_blur_equals_pyclesperanto(opencl_device, sigma):
    import pyclesperanto_prototype as cle

    from nuclei3d.segment import gaussian_blur

    image = cle.push(noisy_blobs(6, shape=(13, 27, 20)))
    expected = cle.gaussian_blur(image, None, sigma, sigma, sigma)
    out = gaussian_blur(image, cle.create(image), sigma)
    assert_same_arithmetic(cle.pull(out), cle.pull(expected), opencl_device)
    with pytest.raises(ValueError, match="positive"):
        gaussian_blur(image, out, 0)


def test_detect_maxima_equals_pyclesperanto(opencl_device):
    """Plateaus and maxima on every face: cle keeps the first of equal values
    in its order, and handles the two ends of an axis differently."""
    import pyclesperanto_prototype as cle

    from nuclei3d.segment import detect_maxima

    rng = np.random.default_rng(7)
    image = rng.integers(0, 4, (9, 12, 10)).astype(np.float32)  # many ties
    image[0, 5, 5] = image[-1, 5, 5] = image[4, 0, 3] = image[4, 6, -1] = 9
    expected = cle.pull(cle.detect_maxima_box(cle.push(image), None, 0, 0, 0))
    pushed = cle.push(image)
    out = cle.pull(detect_maxima(pushed, cle.create(pushed)))
    np.testing.assert_array_equal(out, expected)
    assert 0 < expected.sum() < image.size / 4


def test_integer_stacks_are_labelled_as_float32(opencl_device):
    image = two_nuclei(False)
    as_uint8 = segment_nuclei(image.astype(np.uint8), 1.0)
    np.testing.assert_array_equal(as_uint8, segment_nuclei(image, 1.0))
    assert as_uint8.max() == 2


def test_filters_reject_other_dtypes(opencl_device):
    import pyclesperanto_prototype as cle

    from nuclei3d.segment import detect_maxima, gaussian_blur

    image = cle.create((4, 4, 4), np.uint8)
    with pytest.raises(TypeError, match="float32"):
        gaussian_blur(image, cle.create((4, 4, 4), np.float32), 1.0)
    with pytest.raises(TypeError, match="float32"):
        detect_maxima(image, image)
