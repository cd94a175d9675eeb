"""Stage 1: resample a stack to isotropic voxels."""

from __future__ import annotations

import math

__all__ = ["resample_isotropic", "resolve_voxel_size", "run_stage"]


def _check_voxel_size(voxel_size_um, what):
    sizes = tuple(float(v) for v in voxel_size_um)
    if len(sizes) != 3 or not all(math.isfinite(v) and v > 0 for v in sizes):
        raise ValueError(
            f"{what} {voxel_size_um!r} must be three positive finite numbers "
            "(z, y, x) in µm"
        )
    return sizes


def resolve_voxel_size(path, *, sheet=None, metadata=None, default=None):
    """Decide a stack's voxel size: sample sheet, else TIFF metadata, else default.

    Parameters
    ----------
    path : str
        The stack's file, named in the error message.
    sheet, metadata, default : sequence of 3 float or None, optional
        Voxel size (z, y, x) in µm from the sample sheet, from the file's own
        metadata and from the config ``default_voxel_size_um``. A sheet entry
        with any missing value counts as absent.

    Returns
    -------
    tuple of 3 float

    Raises
    ------
    ValueError
        If none of the three is given, or the one chosen is not positive.

    Examples
    --------
    >>> resolve_voxel_size("a.tif", metadata=(1.0, 0.2, 0.2), default=(1, 1, 1))
    (1.0, 0.2, 0.2)
    """
    for value, where in (
        (sheet, "sample sheet voxel_size_z/y/x"),
        (metadata, "TIFF metadata voxel size"),
        (default, "config default_voxel_size_um"),
    ):
        if value is None:
            continue
        if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in value):
            continue
        return _check_voxel_size(value, f"{path}: {where}")
    raise ValueError(
        f"{path}: voxel size unknown: give voxel_size_z, voxel_size_y and "
        "voxel_size_x (µm) in the sample sheet, write it into the TIFF (ImageJ "
        "spacing/resolution or OME PhysicalSize*), or set default_voxel_size_um "
        "in the config"
    )


def resample_isotropic(
    image, voxel_size_um, *, target_voxel_size_um=1.0, on_device=False
):
    """Scale a stack so that every voxel is a cube of `target_voxel_size_um`.

    Runs ``cle.scale`` (nearest-neighbour, as the seed notebook) on the current
    OpenCL device. A host stack is pushed in its own dtype (uint8: a quarter of
    float32's bytes) through pinned memory (:func:`nuclei3d.device.push`).

    Parameters
    ----------
    image : array_like or pyclesperanto_prototype.OCLArray
        3D stack (z, y, x), on the host or already on the device.
    voxel_size_um : sequence of 3 float
        Its voxel size (z, y, x) in µm.
    target_voxel_size_um : float, optional
        Edge of the isotropic output voxel in µm. The seed's choice, 1 µm, is the
        default.
    on_device : bool, optional
        Return the device image instead of pulling it to the host.

    Returns
    -------
    numpy.ndarray or pyclesperanto_prototype.OCLArray
        float32 stack of shape ``round(shape * voxel_size / target)``.

    Raises
    ------
    ValueError
        If a size is not positive, or the result would have an empty axis.
    """
    import pyclesperanto_prototype as cle

    from .device import as_stack, pull
    from .device import on_device as to_device

    image = as_stack(image)
    vz, vy, vx = _check_voxel_size(voxel_size_um, "`voxel_size_um`")
    target = float(target_voxel_size_um)
    if not (math.isfinite(target) and target > 0):
        raise ValueError(f"`target_voxel_size_um` ({target}) must be positive")
    extent = tuple(n * v for n, v in zip(image.shape, (vz, vy, vx), strict=True))
    if min(extent) < target:
        raise ValueError(
            f"`target_voxel_size_um` ({target} µm) is larger than the stack's "
            f"extent (z, y, x) = {tuple(round(e, 3) for e in extent)} µm"
        )
    scaled = cle.scale(
        to_device(image),
        factor_x=vx / target,
        factor_y=vy / target,
        factor_z=vz / target,
        auto_size=True,
    )
    return scaled if on_device else pull(scaled)


def run_stage(stack, device, log):
    """Stage resample: read the raw stack, resample to isotropic voxels."""
    from . import io
    from .device import check_current_device_memory

    p = stack.params
    path = p["image"]
    image, metadata_voxel_size = io.read_stack(path, channel=p["channel"])
    voxel_size = resolve_voxel_size(
        path,
        sheet=p["voxel_size_um"],
        metadata=metadata_voxel_size,
        default=p["default_voxel_size_um"],
    )
    target = p["target_voxel_size_um"]
    log.info(
        "%s: %s %s, voxel %s µm -> %s µm",
        path,
        image.shape,
        image.dtype,
        voxel_size,
        target,
    )
    with device:
        check_current_device_memory(path, image.shape, buffers=2)
        try:
            resampled = resample_isotropic(
                image, voxel_size, target_voxel_size_um=target
            )
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from error
    log.info("resampled to %s", resampled.shape)
    io.write_stack(stack.output, resampled, (target,) * 3)
