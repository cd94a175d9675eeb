"""TIFF input and output that keeps the voxel size, with atomic writes.

Every stack this workflow writes carries its voxel size in micrometres, so napari
(through tifffile) and Fiji open it at true scale:

- uint8, uint16 and float32 stacks are written as ImageJ hyperstacks
  (``spacing`` for z, the TIFF resolution tags for y and x, unit ``um``);
- other types (uint32 labels beyond 65535 objects) are written as OME-TIFF with
  ``PhysicalSizeZ/Y/X`` in µm.

Reading understands both, so files from Fiji, from microscopes that write OME, and
from this workflow all give their voxel size back.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import tifffile

__all__ = [
    "StackError",
    "as_label_dtype",
    "atomic_directory",
    "atomic_path",
    "read_stack",
    "read_voxel_size",
    "write_stack",
    "write_table",
]

IMAGEJ_DTYPES = (np.uint8, np.uint16, np.float32)
_UNIT_TO_UM = {
    "um": 1.0,
    "µm": 1.0,
    "\\u00B5m": 1.0,
    "micron": 1.0,
    "microns": 1.0,
    "micrometer": 1.0,
    "nm": 1e-3,
    "mm": 1e3,
}


class StackError(ValueError):
    """An input stack that the workflow cannot process, with the reason."""


def _read_umask():
    """The process' umask (reading it means setting it, so set it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Read once: setting it back and forth while threads create files would race.
_UMASK = _read_umask()


def _remove_leftovers(path):
    """Remove the temporaries of earlier writes of `path` that never finished.

    A job killed mid-write (SIGKILL, a node failure) leaves its ``.<name>.*.part``
    behind; the job that writes `path` again (Snakemake runs one job per output
    at a time) removes it.
    """
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.part"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to `path`; move it onto `path` on success.

    Readers never see a half-written file: the final name appears only once the
    content is complete. On any exception the temporary file is removed and the
    destination is left untouched; a temporary that a killed process left behind
    is removed by the next write of `path`.

    Parameters
    ----------
    path : str or os.PathLike
        Final destination.

    Yields
    ------
    pathlib.Path
        Where to write. Same folder as `path`, so the final rename is atomic.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "a.txt") as tmp:
    ...     _ = tmp.write_text("done")
    >>> sorted(p.name for p in d.iterdir())
    ['a.txt']
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(path)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".part", dir=path.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private (0600)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_directory(path):
    """Yield a temporary folder next to `path`; rename it to `path` on success.

    Parameters
    ----------
    path : str or os.PathLike
        Final folder; must not exist, or be empty.

    Yields
    ------
    pathlib.Path
        Folder to fill. Removed, with its content, on any exception.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(path)
    tmp = Path(
        tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    )
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp makes it private (0700)
        if path.is_dir():
            path.rmdir()
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_table(path, table):
    """Write a pandas DataFrame as CSV, atomically, without its index.

    Parameters
    ----------
    path : str or os.PathLike
        Destination ``.csv``.
    table : pandas.DataFrame
    """
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def as_label_dtype(labels):
    """Return `labels` in the smallest unsigned type that holds its largest label.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer or float label image with non-negative whole values.

    Returns
    -------
    numpy.ndarray
        uint16 where the largest label is below 65536, else uint32.

    Examples
    --------
    >>> as_label_dtype(np.array([0, 3], dtype=np.uint32)).dtype
    dtype('uint16')
    """
    labels = np.asarray(labels)
    if labels.dtype == np.uint16:
        return labels
    largest = int(labels.max()) if labels.size else 0
    return labels.astype(np.uint16 if largest < 2**16 else np.uint32, copy=False)


def write_stack(path, image, voxel_size_um):
    """Write a 3D stack with its voxel size, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination ``.tif``.
    image : numpy.ndarray
        3D array (z, y, x).
    voxel_size_um : sequence of 3 float
        Voxel size (z, y, x) in micrometres.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "s.tif"
    >>> write_stack(p, np.zeros((2, 3, 4), np.uint8), (1.0, 0.2, 0.2))
    >>> read_voxel_size(p)
    (1.0, 0.2, 0.2)
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"`image` (shape {image.shape}) must be 3D (z, y, x)")
    vz, vy, vx = (float(v) for v in voxel_size_um)
    with atomic_path(path) as tmp:
        if image.dtype in IMAGEJ_DTYPES:
            tifffile.imwrite(
                tmp,
                image,
                imagej=True,
                photometric="minisblack",
                resolution=(1.0 / vx, 1.0 / vy),
                metadata={"spacing": vz, "unit": "um", "axes": "ZYX"},
            )
        else:
            tifffile.imwrite(
                tmp,
                image,
                ome=True,
                photometric="minisblack",
                metadata={
                    "axes": "ZYX",
                    "PhysicalSizeZ": vz,
                    "PhysicalSizeY": vy,
                    "PhysicalSizeX": vx,
                    "PhysicalSizeZUnit": "µm",
                    "PhysicalSizeYUnit": "µm",
                    "PhysicalSizeXUnit": "µm",
                },
            )


def _imagej_voxel_size(tif):
    meta = tif.imagej_metadata
    if not meta or "spacing" not in meta:
        return None
    page = tif.pages.first
    scale = _UNIT_TO_UM.get(str(meta.get("unit", "um")).strip())
    if scale is None:
        return None
    sizes = []
    for tag in ("YResolution", "XResolution"):
        value = page.tags.valueof(tag)
        if not value or value[0] == 0:
            return None
        sizes.append(value[1] / value[0] * scale)
    return (float(meta["spacing"]) * scale, *sizes)


def _ome_voxel_size(tif):
    if not tif.is_ome:
        return None
    pixels = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]
    pixels = (pixels[0] if isinstance(pixels, list) else pixels)["Pixels"]
    sizes = []
    for axis in "ZYX":
        value = pixels.get(f"PhysicalSize{axis}")
        scale = _UNIT_TO_UM.get(pixels.get(f"PhysicalSize{axis}Unit", "µm"))
        if value is None or scale is None:
            return None
        sizes.append(float(value) * scale)
    return tuple(sizes)


def _declared_voxel_size(tif):
    """ImageJ metadata first, then OME; None when the file declares neither."""
    return _imagej_voxel_size(tif) or _ome_voxel_size(tif)


def read_voxel_size(path):
    """Read the voxel size a TIFF declares, in µm, or None if it declares none.

    ImageJ metadata (``spacing`` plus resolution tags) is read first, then OME
    ``PhysicalSize*``.

    Parameters
    ----------
    path : str or os.PathLike
        TIFF file.

    Returns
    -------
    tuple of 3 float or None
        Voxel size (z, y, x) in micrometres.
    """
    with tifffile.TiffFile(path) as tif:
        return _declared_voxel_size(tif)


def _check_complete(tif):
    """Raise if any image data lies beyond the end of the file (truncated).

    A contiguous series (ImageJ and this library's files) is checked in one
    step; parsing every page of an 86-slice stack took 10-15 ms a read.
    """
    size = tif.filehandle.size
    series = tif.series[0]
    if series.dataoffset is not None:
        pages = len(tif.pages)  # walks the chain of page headers (tifffile complains)
        end = series.dataoffset + series.nbytes
        if end > size:
            raise StackError(f"image data needs bytes up to {end}, the file has {size}")
        if series.shape and pages < series.shape[0] and len(series.pages) > 1:
            raise StackError(f"it has {pages} of its {series.shape[0]} pages")
        return
    for page in tif.pages:
        ends = [
            o + n for o, n in zip(page.dataoffsets, page.databytecounts, strict=True)
        ]
        if ends and max(ends) > size:
            raise StackError(
                f"page {page.index} needs bytes up to {max(ends)}, the file has {size}"
            )


class _TiffComplaints(logging.Handler):
    """Collects tifffile's warnings about damaged files while one is read."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage().splitlines()[-1].strip())


def _pick_channel(path, image, axes, channel):
    """Reduce a multichannel array to the 3D stack of one channel."""
    keep = [i for i, n in enumerate(image.shape) if n > 1 or axes[i] in "ZYX"]
    image = image.reshape([image.shape[i] for i in keep])
    axes = "".join(axes[i] for i in keep)
    channel_axes = [i for i, a in enumerate(axes) if a in "CS"]
    if channel is None:
        if channel_axes:
            count = image.shape[channel_axes[0]]
            raise StackError(
                f"{path}: has {count} channels (axes {axes}, shape {image.shape}); "
                "expected one channel: add a `channel` column (0-based) to the "
                "sample sheet to pick the nuclear channel"
            )
        return image
    if len(channel_axes) != 1:
        raise StackError(
            f"{path}: `channel` {channel} given, but the file has no single "
            f"channel axis (axes {axes}, shape {image.shape})"
        )
    axis = channel_axes[0]
    if not 0 <= channel < image.shape[axis]:
        raise StackError(
            f"{path}: `channel` {channel} out of range: the file has "
            f"{image.shape[axis]} channels (0 to {image.shape[axis] - 1})"
        )
    return np.take(image, channel, axis=axis)


def read_stack(path, *, channel=None):
    """Read a 3D stack and the voxel size its metadata declares.

    Parameters
    ----------
    path : str or os.PathLike
        TIFF file holding one 3D (z, y, x) stack, or a multichannel stack
        (ImageJ/OME axes with ``C``, or RGB samples) together with `channel`.
    channel : int, optional
        0-based channel to take from a multichannel file.

    Returns
    -------
    image : numpy.ndarray
        The 3D stack.
    voxel_size_um : tuple of 3 float or None
        Voxel size (z, y, x) from the file's metadata, None when it has none.

    Raises
    ------
    StackError
        If the file is missing, not a readable TIFF, not a 3D stack, holds
        several channels and `channel` does not pick one, or holds NaN or
        infinite values. The message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise StackError(f"{path}: file not found")
    complaints = _TiffComplaints()
    logging.getLogger("tifffile").addHandler(complaints)
    try:
        with tifffile.TiffFile(path) as tif:
            _check_complete(tif)
            image = tif.asarray()
            axes = tif.series[0].axes
            voxel_size = _declared_voxel_size(tif)
    except StackError as error:
        raise StackError(f"{path}: truncated or corrupt TIFF ({error})") from None
    except Exception as error:  # tifffile raises many types on broken files
        raise StackError(
            f"{path}: not a readable TIFF stack ({type(error).__name__}: {error})"
        ) from error
    finally:
        logging.getLogger("tifffile").removeHandler(complaints)
    if complaints.messages:
        raise StackError(
            f"{path}: truncated or corrupt TIFF ({'; '.join(complaints.messages)})"
        )
    if image.ndim > 3 or channel is not None:
        image = _pick_channel(path, image, axes, channel)
    if image.ndim != 3:
        raise StackError(
            f"{path}: expected one 3D single-channel stack (z, y, x), "
            f"found an array of shape {image.shape} (axes {axes})"
        )
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        nan, inf = int(np.isnan(image).sum()), int(np.isinf(image).sum())
        raise StackError(
            f"{path}: holds {nan} NaN and {inf} infinite voxels; expected finite "
            "intensities (replace them, e.g. with 0, before segmenting)"
        )
    if image.dtype.kind not in "uif":
        raise StackError(f"{path}: unsupported pixel type {image.dtype}")
    return image, voxel_size
