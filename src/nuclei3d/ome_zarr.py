"""Stage ome_zarr (config ``ome_zarr: true``): image and labels as one OME-Zarr.

``results/<sample>/segmentation.ome.zarr`` holds the resampled stack as an NGFF
image (zarr v2, NGFF 0.4, axes z, y, x in micrometres with the voxel size as
scale) and the nuclei as its label image ``labels/nuclei``, so napari (with
napari-ome-zarr), Fiji's MoBIE/BigDataViewer and other NGFF tools open the two
together. Written with bioio-ome-zarr's writer; the ``labels`` group and the
``image-label`` metadata follow the NGFF 0.4 specification.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["LABELS", "run_stage", "write_segmentation"]

LABELS = "nuclei"


def _write_image(path, data, voxel_size_um, name):
    from bioio_ome_zarr.writers import OMEZarrWriter

    writer = OMEZarrWriter(
        str(path),
        level_shapes=data.shape,
        dtype=data.dtype,
        zarr_format=2,
        image_name=name,
        axes_names=["z", "y", "x"],
        axes_types=["space", "space", "space"],
        axes_units=["micrometer"] * 3,
        physical_pixel_size=[float(v) for v in voxel_size_um],
    )
    writer.write_full_volume(data)


def write_segmentation(path, image, labels, voxel_size_um):
    """Write `image` and its `labels` as one OME-Zarr (NGFF 0.4) at `path`.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.ome.zarr`` folder to create.
    image : numpy.ndarray
        3D stack (z, y, x).
    labels : numpy.ndarray
        Integer labels of the same shape.
    voxel_size_um : tuple of 3 float
        (z, y, x) in µm.

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    import zarr

    if image.shape != labels.shape or image.ndim != 3:
        raise ValueError(
            f"`image` (shape {image.shape}) and `labels` (shape {labels.shape}) "
            "must be 3D stacks of the same shape"
        )
    path = Path(path)
    _write_image(path, image, voxel_size_um, "resampled")
    _write_image(path / "labels" / LABELS, labels, voxel_size_um, LABELS)
    zarr.open_group(str(path / "labels"), mode="a", zarr_format=2).attrs.put(
        {"labels": [LABELS]}
    )
    group = zarr.open_group(str(path / "labels" / LABELS), mode="a", zarr_format=2)
    attributes = dict(group.attrs)
    attributes.pop("omero", None)  # channel rendering is for intensity images
    attributes["image-label"] = {"version": "0.4", "source": {"image": "../../"}}
    group.attrs.put(attributes)


def run_stage(stack, log):
    """Stage ome_zarr: the resampled stack and its labels as one OME-Zarr."""
    from . import io

    image, voxel_size = io.read_stack(stack.inputs["intensity"])
    labels, _ = io.read_stack(stack.inputs["labels"])
    with io.atomic_directory(stack.output) as folder:
        write_segmentation(folder, image, labels, voxel_size)
    log.info("%s: image and labels written as OME-Zarr", stack.name)
