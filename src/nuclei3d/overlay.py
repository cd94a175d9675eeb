"""Stage 5: pictures for a person: outlines over intensity, max projections."""

from __future__ import annotations

import numpy as np

__all__ = [
    "compose_overlays",
    "label_colors",
    "outlines",
    "overlay_images",
    "overlay_layers",
    "run_stage",
    "to_grey",
]


def label_colors(labels):
    """Colour each label with a fixed pseudo-random RGB colour, background black.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer label image of any shape.

    Returns
    -------
    numpy.ndarray
        uint8 RGB image, shape ``labels.shape + (3,)``.

    Examples
    --------
    >>> label_colors(np.array([[0, 1]]))[0, 0].tolist()
    [0, 0, 0]
    """
    palette = np.random.default_rng(7).integers(64, 256, size=(256, 3), dtype=np.uint8)
    labels = np.asarray(labels, dtype=np.int64)
    rgb = palette[labels % 255 + 1]
    rgb[labels == 0] = 0
    return rgb


def to_grey(image, *, low=None, high=None):
    """Scale intensities to an 8-bit grey RGB image (0.5 and 99.5 percentiles).

    Parameters
    ----------
    image : numpy.ndarray
        Intensities of any shape.
    low, high : float, optional
        Display range; percentiles of `image` when not given.

    Returns
    -------
    numpy.ndarray
        uint8 RGB image, shape ``image.shape + (3,)``.
    """
    image = np.asarray(image, dtype=np.float32)
    if low is None or high is None:
        low, high = np.percentile(image, (0.5, 99.5)) if image.size else (0, 1)
    scaled = np.clip((image - low) / max(high - low, 1e-12), 0, 1) * 255
    return np.repeat(scaled.astype(np.uint8)[..., np.newaxis], 3, axis=-1)


def overlay_layers(intensity, labels):
    """The OpenCL part of :func:`overlay_images`: the maximum projections.

    Parameters
    ----------
    intensity, labels
        As for :func:`overlay_images`.

    Returns
    -------
    dict
        ``intensity_projections`` and ``label_projections``: axis -> maximum
        projection, shown as (y, x), (z, x) and (z, y).
    """
    import pyclesperanto_prototype as cle

    from .device import pull, push

    intensity = np.asarray(intensity)
    labels = np.asarray(labels)
    if intensity.shape != labels.shape or intensity.ndim != 3:
        raise ValueError(
            f"`intensity` (shape {intensity.shape}) and `labels` (shape "
            f"{labels.shape}) must be 3D stacks of the same shape"
        )
    gpu_intensity, gpu_labels = push(intensity), push(labels)
    projections = {"intensity_projections": {}, "label_projections": {}}
    for axis, project in (
        ("z", cle.maximum_z_projection),
        ("y", cle.maximum_y_projection),
        ("x", lambda image: cle.transpose_xy(cle.maximum_x_projection(image))),
    ):
        projections["intensity_projections"][axis] = pull(project(gpu_intensity))
        projections["label_projections"][axis] = pull(project(gpu_labels))
    return projections


def outlines(labels):
    """Label edges of a 2D label image, as the seed drew them.

    A pixel is on an edge when one of its four neighbours has another label
    (background included), as ``cle.detect_label_edges`` finds them on a 2D
    slice; scikit-image's ``find_boundaries`` in "thick" mode gives the same
    pixels, on the host, without a round trip to the device per slice.

    Parameters
    ----------
    labels : numpy.ndarray
        2D label image.

    Returns
    -------
    numpy.ndarray
        bool image of the same shape.
    """
    from skimage.segmentation import find_boundaries

    return find_boundaries(labels, connectivity=1, mode="thick")


def _check_every_n_slices(every_n_slices):
    if every_n_slices < 1:
        raise ValueError(f"`every_n_slices` ({every_n_slices}) must be at least 1")


def compose_overlays(intensity, labels, layers, *, every_n_slices=20):
    """The pictures of :func:`overlay_images` from its :func:`overlay_layers`."""
    _check_every_n_slices(every_n_slices)
    intensity = np.asarray(intensity)
    labels = np.asarray(labels)
    low, high = np.percentile(intensity, (0.5, 99.5))
    pictures = {}
    for z in range(0, intensity.shape[0], every_n_slices):
        picture = to_grey(intensity[z], low=low, high=high)
        edges = outlines(labels[z])
        picture[edges] = label_colors(labels[z])[edges]
        pictures[f"outlines_z{z:04d}"] = picture
    for axis, projection in layers["intensity_projections"].items():
        pictures[f"projection_{axis}_intensity"] = to_grey(projection)
        pictures[f"projection_{axis}_labels"] = label_colors(
            layers["label_projections"][axis]
        )
    return pictures


def overlay_images(intensity, labels, *, every_n_slices=20):
    """Outline and projection pictures of one segmented stack.

    Parameters
    ----------
    intensity : numpy.ndarray
        3D intensity stack (z, y, x), isotropic (the resampled stack).
    labels : numpy.ndarray
        Labels of the same shape.
    every_n_slices : int, optional
        Take z slices 0, n, 2n, ... for outline pictures.

    Returns
    -------
    dict of str to numpy.ndarray
        uint8 RGB pictures by file stem: ``outlines_z{z:04d}`` (label outlines in
        their colour over grey intensity, one per chosen z slice, outlines found
        in 2D like the seed, :func:`outlines`), ``projection_{z,y,x}_intensity``
        and ``projection_{z,y,x}_labels`` (maximum projections, each shown as
        (y, x), (z, x) and (z, y)).
    """
    _check_every_n_slices(every_n_slices)
    layers = overlay_layers(intensity, labels)
    return compose_overlays(intensity, labels, layers, every_n_slices=every_n_slices)


def run_stage(stack, device, log):
    """Stage overlay: outline and projection PNGs (:func:`overlay_images`)."""
    import imageio.v3 as iio

    from . import io
    from .device import check_current_device_memory

    intensity, _ = io.read_stack(stack.inputs["intensity"])
    labels, _ = io.read_stack(stack.inputs["labels"])
    with device:  # only the OpenCL part holds the device
        check_current_device_memory(stack.inputs["labels"], labels.shape, buffers=3)
        layers = overlay_layers(intensity, labels)
    pictures = compose_overlays(
        intensity, labels, layers, every_n_slices=stack.params["every_n_slices"]
    )
    with io.atomic_directory(stack.output) as folder:
        for name, picture in pictures.items():
            # zlib level 1: half the time of the default 6 (7 vs 14 ms for a
            # demo stack's 11 pictures), and no larger here.
            iio.imwrite(folder / f"{name}.png", picture, compress_level=1)
