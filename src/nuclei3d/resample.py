"""Stage 1: resample a stack to isotropic voxels."""

from __future__ import annotations

import math

import numpy as np

from .slabs import map_slabs, slab_count

# The stage runs OpenCL kernels: its job opens a device first (nuclei3d.job).
OPENCL = True

__all__ = [
    "gather_nearest",
    "nearest_sources",
    "pick_isotropic",
    "resample_isotropic",
    "resampled_shape",
    "resolve_voxel_size",
    "run_stage",
]


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


def _scale_factors(shape, voxel_size_um, target_voxel_size_um):
    """Scale factors (z, y, x) to `target_voxel_size_um`, checked."""
    vz, vy, vx = _check_voxel_size(voxel_size_um, "`voxel_size_um`")
    target = float(target_voxel_size_um)
    if not (math.isfinite(target) and target > 0):
        raise ValueError(f"`target_voxel_size_um` ({target}) must be positive")
    extent = tuple(n * v for n, v in zip(shape, (vz, vy, vx), strict=True))
    if min(extent) < target:
        raise ValueError(
            f"`target_voxel_size_um` ({target} µm) is larger than the stack's "
            f"extent (z, y, x) = {tuple(round(e, 3) for e in extent)} µm"
        )
    return vz / target, vy / target, vx / target


def resampled_shape(shape, voxel_size_um, *, target_voxel_size_um=1.0):
    """Shape :func:`resample_isotropic` gives a stack of `shape` (same checks).

    Examples
    --------
    >>> resampled_shape((86, 396, 393), (1.0, 0.202, 0.202))
    (86, 80, 79)
    """
    factors = _scale_factors(shape, voxel_size_um, target_voxel_size_um)
    return tuple(s.size for s in nearest_sources(shape, factors))


def nearest_sources(shape, factors_zyx):
    """Output shape and, per axis, the input index each output voxel copies.

    The lattice of ``cle.scale(..., auto_size=True)`` with nearest-neighbour
    sampling, worked out as its kernel does (``affine_transform_3d_x.cl``): output
    voxel ``i`` along an axis scaled by ``f`` reads input voxel
    ``trunc(float32(1 / f) * (i + 0.5))`` (float32 arithmetic), and the output has
    ``round(n * f)`` voxels. ``tests/test_resample.py`` checks the two give the
    same stacks.

    Parameters
    ----------
    shape : tuple of 3 int
        Input shape (z, y, x).
    factors_zyx : tuple of 3 float
        Scale factors, output voxels per input voxel.

    Returns
    -------
    tuple of 3 numpy.ndarray
        int64 source indices for z, y and x; -1 where the kernel reads outside
        the input (it writes 0 there).
    """
    # cle inverts the 4x4 scale matrix and computes in float32
    fz, fy, fx = factors_zyx
    inverse = np.linalg.inv(np.diag([fx, fy, fz, 1.0])).astype(np.float32)
    sources = []
    for n, f, m in zip(shape, factors_zyx, np.diag(inverse)[2::-1], strict=True):
        centres = np.arange(int(np.around(n * f)), dtype=np.float32) + np.float32(0.5)
        position = m * centres  # float32 product, as on the device
        index = position.astype(np.int64)
        index[position >= np.float32(n)] = -1
        sources.append(index)
    return tuple(sources)


def _gather(image, sources, out):
    """:func:`gather_nearest` into `out`, slice by slice, in this thread.

    Each output slice takes its rows, then its columns, through one row buffer:
    no stack-sized temporary (a fresh 86 MB one for the large benchmark stack
    cost more in page faults than the copy itself).
    """
    z_sources, y_sources, x_sources = sources
    rows, columns = y_sources[y_sources >= 0], x_sources[x_sources >= 0]
    if rows.size < y_sources.size or columns.size < x_sources.size:
        out[...] = 0  # -1 only at the far end of an axis: zeros there
    buffer = np.empty((rows.size, image.shape[2]), image.dtype)
    for slice_out, z in zip(out, z_sources, strict=True):
        if z < 0:
            slice_out[...] = 0
            continue
        np.take(image[z], rows, axis=0, out=buffer, mode="clip")
        target = slice_out[: rows.size, : columns.size]
        np.take(buffer, columns, axis=1, out=target, mode="clip")
    return out


def gather_nearest(image, sources, *, threads=None):
    """Copy the voxels that :func:`nearest_sources` names into a new stack.

    Parameters
    ----------
    image : numpy.ndarray
        3D stack (z, y, x), any dtype (kept).
    sources : tuple of 3 numpy.ndarray
        Input index per output voxel along z, y and x; -1 gives 0.
    threads : int, optional
        Threads that copy slabs of output slices at once (NumPy releases the
        GIL while it copies); by default one for a stack under 64 MiB
        (:func:`nuclei3d.slabs.slab_count`).

    Returns
    -------
    numpy.ndarray
    """
    if threads is None:
        threads = slab_count(image.nbytes, 2**26)
    out = np.empty(tuple(index.size for index in sources), image.dtype)
    map_slabs(
        lambda z: _gather(image, (sources[0][z], *sources[1:]), out[z]),
        sources[0].size,
        threads,
    )
    return out


def pick_isotropic(image, voxel_size_um, *, target_voxel_size_um=1.0):
    """The voxels of a host stack that :func:`resample_isotropic` keeps, in its dtype.

    Parameters
    ----------
    image : array_like
        3D stack (z, y, x) on the host.
    voxel_size_um, target_voxel_size_um
        As for :func:`resample_isotropic`.

    Returns
    -------
    numpy.ndarray
        The resampled stack in the dtype of `image`.
    """
    from .device import as_stack

    image = np.asarray(as_stack(image))
    factors = _scale_factors(image.shape, voxel_size_um, target_voxel_size_um)
    return gather_nearest(image, nearest_sources(image.shape, factors))


def resample_isotropic(
    image, voxel_size_um, *, target_voxel_size_um=1.0, on_device=False
):
    """Scale a stack so that every voxel is a cube of `target_voxel_size_um`.

    Nearest-neighbour sampling, as in the seed notebook's ``cle.scale``, with the
    same result. Nearest-neighbour resampling only picks voxels, so a host stack
    is resampled on the host (:func:`pick_isotropic`), where the data are: pushing
    the whole stack first would move 25 times the bytes at 0.2 µm to 1 µm (for
    the large benchmark stack, 428 MB instead of 17 MB). A device image is scaled
    on its device with ``cle.scale``.

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
        Return a device image. A host stack's picked voxels are pushed in their
        own dtype (uint8: a quarter of float32's bytes) and made float32 there
        (:func:`nuclei3d.device.push_float32`, with a kernel of
        ``kernels/filters.cl``: naming it here puts it into this stage's code
        fingerprint).

    Returns
    -------
    numpy.ndarray or pyclesperanto_prototype.OCLArray
        float32 stack of shape ``round(shape * voxel_size / target)``.

    Raises
    ------
    ValueError
        If a size is not positive, or the result would have an empty axis.
    """
    from .device import as_stack, pull, push_float32

    image = as_stack(image)
    if isinstance(image, np.ndarray):
        picked = pick_isotropic(
            image, voxel_size_um, target_voxel_size_um=target_voxel_size_um
        )
        return push_float32(picked) if on_device else picked.astype(np.float32)
    import pyclesperanto_prototype as cle

    fz, fy, fx = _scale_factors(image.shape, voxel_size_um, target_voxel_size_um)
    scaled = cle.scale(image, factor_x=fx, factor_y=fy, factor_z=fz, auto_size=True)
    return scaled if on_device else pull(scaled)


def run_stage(stack, log):
    """Stage resample: read the raw stack (a plain TIFF, or one stack of a file
    bioio reads: :func:`nuclei3d.formats.read_any`), resample to isotropic voxels."""
    from . import io
    from .device import check_current_device_memory
    from .formats import read_any

    p = stack.params
    path = p["image"]
    image, metadata_voxel_size = read_any(
        path,
        channel=p["channel"],
        scene=p.get("scene"),
        timepoint=p.get("timepoint"),
    )
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
    try:
        shape = resampled_shape(image.shape, voxel_size, target_voxel_size_um=target)
        check_current_device_memory(path, shape, buffers=2)
        resampled = resample_isotropic(image, voxel_size, target_voxel_size_um=target)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error
    log.info("resampled to %s", resampled.shape)
    io.write_stack(stack.output, resampled, (target,) * 3)
