"""Stage 5: pictures for a person: outlines over intensity, max projections.

Two PNGs per stack: a contact sheet of every n-th z slice with each nucleus
outlined, and the maximum projections. Every panel is enlarged without smoothing
to at least 512 pixels on its longer side and has a scale bar in µm.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

# The stage runs OpenCL kernels: its job opens a device first (nuclei3d.job).
OPENCL = True

__all__ = [
    "MIN_LONG_SIDE",
    "compose_overlays",
    "contact_sheet",
    "draw_scale_bar",
    "enlarge",
    "enlargement",
    "label_colors",
    "outline_picture",
    "outlines",
    "overlay_images",
    "overlay_layers",
    "run_stage",
    "scale_bar_um",
    "slice_panels",
    "to_grey",
]

MIN_LONG_SIDE = 512


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


def outlines(labels, factor=1, width=1):
    """Label edges of a 2D label image, enlarged `factor` times.

    An edge pixel is a labelled pixel (not background) one of whose four
    neighbours has another label; the image's border is no edge. This is
    scikit-image's ``find_boundaries(enlarge(labels, factor), mode="inner")``,
    worked out on the labels before enlargement: a one-pixel outline that lies
    on its own nucleus, at the picture's resolution.

    Parameters
    ----------
    labels : numpy.ndarray
        2D label image.
    factor : int, optional
        Enlargement (:func:`enlarge`).
    width : int, optional
        Width of the outline in pixels of the enlarged image (at most `factor`),
        inside the nucleus.

    Returns
    -------
    numpy.ndarray
        bool image, ``factor`` times the shape of `labels`.

    Examples
    --------
    >>> outlines(np.array([[0, 1, 1, 1, 2]])).tolist()
    [[False, True, False, True, True]]
    >>> outlines(np.array([[0, 1]]), 2).astype(int).tolist()
    [[0, 0, 1, 0], [0, 0, 1, 0]]
    """
    labels = np.asarray(labels)
    padded = np.pad(labels, 1, mode="edge")
    ny, nx = labels.shape
    labelled = labels != 0

    def differs(dy, dx):
        return enlarge(
            labelled & (padded[dy : dy + ny, dx : dx + nx] != labels), factor
        )

    at = np.arange(factor * max(ny, nx)) % factor
    rows, columns = at[: factor * ny, None], at[None, : factor * nx]
    width = min(width, factor)
    return (
        (differs(0, 1) & (rows < width))
        | (differs(2, 1) & (rows >= factor - width))
        | (differs(1, 0) & (columns < width))
        | (differs(1, 2) & (columns >= factor - width))
    )


def enlarge(image, factor):
    """Nearest-neighbour enlargement: each pixel becomes a `factor` × `factor` block.

    Examples
    --------
    >>> enlarge(np.array([[1, 2]]), 2).tolist()
    [[1, 1, 2, 2], [1, 1, 2, 2]]
    """
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def enlargement(shapes, min_long_side=MIN_LONG_SIDE):
    """The integer factor that brings the longest side of `shapes` to `min_long_side`.

    Examples
    --------
    >>> enlargement([(80, 79)])
    7
    >>> enlargement([(600, 10)])
    1
    """
    longest = max(max(shape[:2]) for shape in shapes)
    return max(1, -(-min_long_side // max(longest, 1)))


def scale_bar_um(width_um):
    """A round scale-bar length (1, 2 or 5 × 10^k µm) about a fifth of `width_um`.

    Examples
    --------
    >>> scale_bar_um(80), scale_bar_um(400), scale_bar_um(3)
    (10.0, 50.0, 0.5)
    """
    target = width_um / 5
    power = 10 ** np.floor(np.log10(target))
    return float(max(m * power for m in (1, 2, 5) if m * power <= target))


@cache
def _font(size):
    """DejaVu Sans (shipped with matplotlib; it has µ) at `size` pixels."""
    import matplotlib
    from PIL import ImageFont

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    return ImageFont.truetype(str(path), size)


def draw_scale_bar(picture, pixel_um):
    """Draw a white scale bar with its length in µm into `picture`'s lower right.

    Parameters
    ----------
    picture : numpy.ndarray
        uint8 RGB picture; drawn into in place.
    pixel_um : float
        Edge of one of its pixels in µm.

    Returns
    -------
    tuple of (float, int)
        The bar's length in µm and in pixels.
    """
    from PIL import Image, ImageDraw

    height, width = picture.shape[:2]
    length_um = scale_bar_um(width * pixel_um)
    length = round(length_um / pixel_um)
    thick = max(3, height // 100)
    margin = max(6, width // 40)
    bottom, right = height - margin, width - margin
    picture[bottom - thick - 2 : bottom + 2, right - length - 2 : right + 2] = 0
    picture[bottom - thick : bottom, right - length : right] = 255
    image = Image.fromarray(picture)
    text = f"{length_um:g} µm"
    font = _font(max(12, width // 30))
    left, _, text_right, text_bottom = font.getbbox(text)
    x = right - (text_right - left) // 2 - length // 2 - left
    y = bottom - thick - 4 - text_bottom
    ImageDraw.Draw(image).text(
        (x, y),
        text,
        font=font,
        fill=(255, 255, 255),
        stroke_width=2,
        stroke_fill=(0, 0, 0),
    )
    picture[...] = np.asarray(image)
    return length_um, length


def outline_picture(intensity, labels, factor, *, low, high):
    """One z slice, enlarged `factor` times, with each nucleus outlined in its colour.

    Outlines (:func:`outlines`) lie on the nucleus' border, a third of an
    enlarged pixel wide (at least one pixel of the picture).
    """
    picture = enlarge(to_grey(intensity, low=low, high=high), factor)
    edges = outlines(labels, factor, width=max(1, factor // 3))
    picture[edges] = enlarge(label_colors(labels), factor)[edges]
    return picture


def contact_sheet(panels, titles, *, background=32):
    """Pictures in a grid (about square), each under its title.

    Parameters
    ----------
    panels : list of numpy.ndarray
        uint8 RGB pictures (they may differ in size).
    titles : list of str
        One per panel.

    Returns
    -------
    numpy.ndarray
        uint8 RGB sheet.
    """
    from PIL import Image, ImageDraw

    columns = int(np.ceil(np.sqrt(len(panels))))
    rows = -(-len(panels) // columns)
    cell_h = max(p.shape[0] for p in panels)
    cell_w = max(p.shape[1] for p in panels)
    font = _font(max(12, cell_w // 30))
    title_h = font.size + 8
    gap = 8
    sheet = np.full(
        (gap + rows * (title_h + cell_h + gap), gap + columns * (cell_w + gap), 3),
        background,
        np.uint8,
    )
    origins = []
    for i, panel in enumerate(panels):
        row, column = divmod(i, columns)
        y = gap + row * (title_h + cell_h + gap) + title_h
        x = gap + column * (cell_w + gap)
        sheet[y : y + panel.shape[0], x : x + panel.shape[1]] = panel
        origins.append((x, y - title_h))
    image = Image.fromarray(sheet)
    draw = ImageDraw.Draw(image)
    for (x, y), title in zip(origins, titles, strict=True):
        draw.text((x, y + 2), title, font=font, fill=(230, 230, 230))
    return np.asarray(image).copy()


def _check_every_n_slices(every_n_slices):
    if every_n_slices < 1:
        raise ValueError(f"`every_n_slices` ({every_n_slices}) must be at least 1")


def slice_panels(intensity, labels, *, every_n_slices, voxel_um, min_long_side):
    """The outline pictures of z slices 0, n, 2n, ...: {z: picture}, with scale bars."""
    _check_every_n_slices(every_n_slices)
    intensity = np.asarray(intensity)
    labels = np.asarray(labels)
    factor = enlargement([intensity.shape[1:]], min_long_side)
    low, high = np.percentile(intensity, (0.5, 99.5))
    panels = {}
    for z in range(0, intensity.shape[0], every_n_slices):
        picture = outline_picture(intensity[z], labels[z], factor, low=low, high=high)
        draw_scale_bar(picture, voxel_um / factor)
        panels[z] = picture
    return panels


def compose_overlays(
    intensity,
    labels,
    layers,
    *,
    every_n_slices=20,
    voxel_um=1.0,
    min_long_side=MIN_LONG_SIDE,
):
    """The pictures of :func:`overlay_images` from its :func:`overlay_layers`."""
    panels = slice_panels(
        intensity,
        labels,
        every_n_slices=every_n_slices,
        voxel_um=voxel_um,
        min_long_side=min_long_side,
    )
    sheet = contact_sheet(
        list(panels.values()),
        [f"z {z * voxel_um:g} µm (slice {z})" for z in panels],
    )
    views = {
        "z": "max over z (y, x)",
        "y": "max over y (z, x)",
        "x": "max over x (z, y)",
    }
    shapes = [p.shape for p in layers["intensity_projections"].values()]
    factor = enlargement(shapes, min_long_side)
    projections, titles = [], []
    for kind, paint, title in (
        ("intensity", to_grey, "intensity"),
        ("label", label_colors, "labels"),
    ):
        for axis, projection in layers[f"{kind}_projections"].items():
            picture = enlarge(paint(projection), factor)
            draw_scale_bar(picture, voxel_um / factor)
            projections.append(picture)
            titles.append(f"{title}, {views[axis]}")
    return {"contact_sheet": sheet, "projections": contact_sheet(projections, titles)}


def overlay_images(
    intensity, labels, *, every_n_slices=20, voxel_um=1.0, min_long_side=MIN_LONG_SIDE
):
    """Outline and projection pictures of one segmented stack, for a person.

    Parameters
    ----------
    intensity : numpy.ndarray
        3D intensity stack (z, y, x), isotropic (the resampled stack).
    labels : numpy.ndarray
        Labels of the same shape.
    every_n_slices : int, optional
        Take z slices 0, n, 2n, ... for outline pictures.
    voxel_um : float, optional
        Edge of the stack's (isotropic) voxel in µm, for scale bars and titles.
    min_long_side : int, optional
        Pictures are enlarged, each pixel a square block (no smoothing), by the
        integer factor that makes their longer side at least this many pixels.

    Returns
    -------
    dict of str to numpy.ndarray
        uint8 RGB pictures by file stem: ``contact_sheet`` (the chosen z slices,
        each nucleus outlined in its colour over grey intensity,
        :func:`outline_picture`, titled with its depth) and ``projections``
        (maximum projections of intensity and labels along z, y and x, shown as
        (y, x), (z, x) and (z, y)); every panel has a scale bar in µm.
    """
    _check_every_n_slices(every_n_slices)
    layers = overlay_layers(intensity, labels)
    return compose_overlays(
        intensity,
        labels,
        layers,
        every_n_slices=every_n_slices,
        voxel_um=voxel_um,
        min_long_side=min_long_side,
    )


def run_stage(stack, log):
    """Stage overlay: outline and projection PNGs (:func:`overlay_images`)."""
    import imageio.v3 as iio

    from . import io
    from .device import check_current_device_memory

    intensity, voxel_size = io.read_stack(stack.inputs["intensity"])
    labels, _ = io.read_stack(stack.inputs["labels"])
    check_current_device_memory(stack.inputs["labels"], labels.shape, buffers=3)
    layers = overlay_layers(intensity, labels)
    pictures = compose_overlays(
        intensity,
        labels,
        layers,
        every_n_slices=stack.params["every_n_slices"],
        voxel_um=voxel_size[-1],
    )
    with io.atomic_directory(stack.output) as folder:
        for name, picture in pictures.items():
            # zlib level 1: about half the time of the default 6, and no larger.
            iio.imwrite(folder / f"{name}.png", picture, compress_level=1)
