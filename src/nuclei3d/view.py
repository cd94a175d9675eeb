"""Look at one sample's stages in napari, overlaid at true scale in µm.

napari is an optional extra (it is not needed to run the workflow) and is imported
only inside the functions that use it. From the command line::

    python -m nuclei3d.view --results results --sample blastocyst_01 \\
        [--image resources/demo/blastocyst_01/image.tif] [--voxel-size 1 0.202 0.202]

Layers, bottom to top: the raw stack (with ``--image``, on its own anisotropic
grid), ``resampled``, ``equalized``, ``background`` (image layers) and ``labels``
(a Labels layer), each scaled by the voxel size its TIFF declares, so that all of
them overlay in micrometres. Only the top image layer and the labels start
visible; the others are a click away in the layer list.

Tested with napari 0.9.2 and PyQt5 (layer ``units`` need napari 0.6 or later).
napari draws with OpenGL, even into a hidden window: on a machine without a
screen, run it under Xvfb (``xvfb-run python -m nuclei3d.view ...``).
"""

from __future__ import annotations

import argparse
import warnings
from dataclasses import dataclass
from pathlib import Path

from .io import read_stack

__all__ = ["INTERMEDIATES", "Layer", "build_viewer", "load_layers", "main"]

# Intermediate stages shown as image layers, in workflow order (bottom to top).
INTERMEDIATES = ("resampled", "equalized", "background")


@dataclass(frozen=True)
class Layer:
    """One layer to show.

    Attributes
    ----------
    name : str
        Layer name: ``raw``, a name from :data:`INTERMEDIATES`, or ``labels``.
    kind : str
        ``"image"`` or ``"labels"``.
    data : numpy.ndarray
        The 3D stack.
    scale : tuple of 3 float
        Voxel size (z, y, x) in µm.
    path : pathlib.Path
        The file it was read from.
    """

    name: str
    kind: str
    data: object
    scale: tuple
    path: Path


def _read(path, name, kind, voxel_size_um=None):
    data, voxel_size = read_stack(path)
    voxel_size = voxel_size_um if voxel_size_um is not None else voxel_size
    if voxel_size is None:
        raise ValueError(
            f"{path}: no voxel size in its metadata (ImageJ or OME); give it "
            "(`image_voxel_size_um`, or --voxel-size Z Y X on the command line)"
        )
    scale = tuple(float(v) for v in voxel_size)
    if len(scale) != 3 or not all(v > 0 for v in scale):
        raise ValueError(
            f"{path}: voxel size {tuple(voxel_size)!r} must be three positive "
            "numbers (z, y, x) in µm"
        )
    return Layer(name=name, kind=kind, data=data, scale=scale, path=Path(path))


def load_layers(results_dir, sample, *, image=None, image_voxel_size_um=None):
    """Read the stacks of one sample, with their voxel sizes, for the viewer.

    Parameters
    ----------
    results_dir : str or os.PathLike
        The workflow's results folder (config ``results``).
    sample : str
        Sample name: the stacks are read from ``{results_dir}/{sample}/``.
    image : str or os.PathLike, optional
        The raw stack, shown on its own grid as layer ``raw``.
    image_voxel_size_um : sequence of 3 float, optional
        Voxel size (z, y, x) of `image` in µm, for a stack whose metadata has
        none (as the sample sheet's ``voxel_size_*``); overrides its metadata.

    Returns
    -------
    list of Layer
        ``raw`` (if `image` is given), the intermediates found, ``labels``.

    Raises
    ------
    FileNotFoundError
        If ``labels.tif`` is missing (a missing intermediate only warns).
    ValueError
        If a stack has no voxel size, or `image_voxel_size_um` is not three
        positive numbers.
    nuclei3d.io.StackError
        If `image` is missing, or a stack is not a readable 3D TIFF.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> from nuclei3d.io import write_stack
    >>> results = pathlib.Path(tempfile.mkdtemp())
    >>> write_stack(results / "s1" / "labels.tif", np.ones((2, 3, 4), np.uint16),
    ...             (1.0, 1.0, 1.0))
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     layers = load_layers(results, "s1")
    >>> [(layer.name, layer.kind, layer.scale) for layer in layers]
    [('labels', 'labels', (1.0, 1.0, 1.0))]
    """
    folder = Path(results_dir) / sample
    labels_path = folder / "labels.tif"
    if not labels_path.is_file():
        raise FileNotFoundError(
            f"{labels_path}: no labels for sample {sample!r} (run the workflow for "
            "it, or check --results and --sample)"
        )
    layers = []
    if image is not None:
        layers.append(_read(image, "raw", "image", image_voxel_size_um))
    for name in INTERMEDIATES:
        path = folder / f"{name}.tif"
        if path.is_file():
            layers.append(_read(path, name, "image"))
        else:
            warnings.warn(f"{path}: not found, layer {name!r} skipped", stacklevel=2)
    layers.append(_read(labels_path, "labels", "labels"))
    return layers


def build_viewer(
    results_dir, sample, *, image=None, image_voxel_size_um=None, show=False
):
    """Open one sample's stages in a napari viewer, at true scale in µm.

    Every stack is read (see :func:`load_layers`) before the viewer is made, so
    a missing or broken file fails fast.

    Parameters
    ----------
    results_dir, sample, image, image_voxel_size_um
        As :func:`load_layers`.
    show : bool, optional
        Show the window. False builds it hidden (tests, scripts).

    Returns
    -------
    napari.Viewer
        Layers ``raw`` (with `image`), ``resampled``, ``equalized``,
        ``background`` (image layers, those found) and ``labels`` (Labels),
        each with ``scale`` = its voxel size (z, y, x) and units µm.

    Raises
    ------
    FileNotFoundError, ValueError, nuclei3d.io.StackError
        As :func:`load_layers`.
    ImportError
        If napari is not installed (it is an optional extra).
    """
    layers = load_layers(
        results_dir, sample, image=image, image_voxel_size_um=image_voxel_size_um
    )
    import napari

    images = [i for i, layer in enumerate(layers) if layer.kind == "image"]
    viewer = napari.Viewer(title=f"nuclei3d: {sample}", show=show)
    try:
        for i, layer in enumerate(layers):
            common = {"name": layer.name, "scale": layer.scale, "units": "µm"}
            if layer.kind == "labels":
                viewer.add_labels(layer.data, **common)
            else:
                visible = i == images[-1]
                viewer.add_image(layer.data, colormap="gray", visible=visible, **common)
        viewer.dims.axis_labels = ("z", "y", "x")
        # napari >= 0.9 has the scale bar on the canvas, older versions on the viewer.
        canvas = getattr(viewer, "canvas", viewer)
        getattr(canvas, "overlays", canvas).scale_bar.visible = True
    except BaseException:
        viewer.close()
        raise
    return viewer


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m nuclei3d.view",
        description="Show one sample's stages and labels in napari, at true scale.",
    )
    parser.add_argument(
        "--results", default="results", help="results folder (default: results)"
    )
    parser.add_argument(
        "--sample", required=True, help="sample name, e.g. blastocyst_01"
    )
    parser.add_argument("--image", help="the raw stack, shown on its own grid")
    parser.add_argument(
        "--voxel-size",
        nargs=3,
        type=float,
        metavar=("Z", "Y", "X"),
        help="voxel size of --image in µm, where its metadata has none",
    )
    return parser


def main(argv=None):
    """Command line: open the viewer and run napari's event loop until closed.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``); ``--help`` lists them.

    Returns
    -------
    int
        0 once the window is closed. A missing or unreadable file exits with
        status 2 and a message naming it (argparse's usage error).
    """
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        _viewer = build_viewer(
            args.results,
            args.sample,
            image=args.image,
            image_voxel_size_um=args.voxel_size,
            show=True,
        )
    except (FileNotFoundError, ValueError) as error:  # StackError is a ValueError
        parser.error(str(error))
    import napari

    napari.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
