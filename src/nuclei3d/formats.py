"""Microscope files through bioio: OME-TIFF, OME-Zarr, CZI, ND2 and LIF.

A plain TIFF is read by :func:`nuclei3d.io.read_stack`; every other file goes
through the `bioio <https://github.com/bioio-devs/bioio>`_ reader of its kind
(pure-Python plugins, picked by the file's suffix, no plugin search). A file can
hold several scenes, time points and channels: :func:`describe` reads only its
metadata (the sample sheet expands a row into one stack per scene and time point
from it), :func:`read` one 3D stack (z, y, x) of it, with the voxel size the file
declares (``physical_pixel_sizes``, in µm).
"""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .io import StackError

__all__ = [
    "READERS",
    "Layout",
    "LayoutCache",
    "describe",
    "expand_sheet",
    "is_bioio_file",
    "read",
    "read_any",
    "reader_name",
]

# Suffix -> (bioio plugin module, what the message calls the format).
READERS = {
    ".ome.tif": ("bioio_ome_tiff", "OME-TIFF"),
    ".ome.tiff": ("bioio_ome_tiff", "OME-TIFF"),
    ".ome.zarr": ("bioio_ome_zarr", "OME-Zarr"),
    ".zarr": ("bioio_ome_zarr", "OME-Zarr"),
    ".czi": ("bioio_czi", "CZI"),
    ".nd2": ("bioio_nd2", "ND2"),
    ".lif": ("bioio_lif", "LIF"),
}


def reader_name(path):
    """The bioio plugin and format name for `path`, or None (plain TIFF, other).

    Examples
    --------
    >>> reader_name("embryo.ome.tiff")
    ('bioio_ome_tiff', 'OME-TIFF')
    >>> reader_name("embryo.tif") is None
    True
    """
    name = str(path).lower().rstrip("/")
    for suffix, reader in READERS.items():
        if name.endswith(suffix):
            return reader
    return None


def is_bioio_file(path):
    """Whether `path` is read through bioio (not a plain TIFF)."""
    return reader_name(path) is not None


@dataclass(frozen=True)
class Layout:
    """What a file holds, from its metadata.

    Attributes
    ----------
    scenes : tuple of str
        Scene ids, in the file's order.
    timepoints : int
        Time points of the first scene.
    channels : tuple of str
        Channel names of the first scene.
    """

    scenes: tuple
    timepoints: int
    channels: tuple


def _open(path):
    reader = reader_name(path)
    if reader is None:
        raise StackError(f"{path}: not a format read through bioio")
    module, kind = reader
    if not Path(path).exists():
        raise StackError(f"{path}: file not found")
    from bioio import BioImage

    try:
        return BioImage(path, reader=importlib.import_module(module).Reader), kind
    except Exception as error:
        raise StackError(
            f"{path}: not a readable {kind} file ({type(error).__name__}: {error})"
        ) from None


def describe(path):
    """The scenes, time points and channels of a file, from its metadata only.

    Raises
    ------
    nuclei3d.io.StackError
        If the file is missing or its reader cannot open it; names the file.
    """
    image, kind = _open(path)
    try:
        return Layout(
            scenes=tuple(str(scene) for scene in image.scenes),
            timepoints=int(image.dims.T),
            channels=tuple(str(c) for c in image.channel_names or ()),
        )
    except Exception as error:
        raise StackError(
            f"{path}: unreadable {kind} metadata ({type(error).__name__}: {error})"
        ) from None


def _scene_index(path, image, scene):
    scenes = [str(s) for s in image.scenes]
    if scene is None:
        if len(scenes) > 1:
            raise StackError(
                f"{path}: holds {len(scenes)} scenes ({', '.join(scenes)}); name one "
                "in the sheet's `scene` column, or leave both `scene` and the file "
                "to the sheet's expansion"
            )
        return 0
    number = isinstance(scene, (int, float, np.integer, np.floating))
    if number and float(scene).is_integer() and 0 <= int(scene) < len(scenes):
        return int(scene)
    text = str(scene)
    if text in scenes:
        return scenes.index(text)
    if text.isdigit() and int(text) < len(scenes):
        return int(text)
    raise StackError(
        f"{path}: has no scene {scene!r}; its scenes: {', '.join(scenes)} "
        f"(or 0 to {len(scenes) - 1})"
    )


def _channel_index(path, image, channel):
    names = [str(c) for c in image.channel_names or ()]
    count = int(image.dims.C)
    if channel is None:
        if count > 1:
            raise StackError(
                f"{path}: has {count} channels ({', '.join(names)}); name one in "
                "the sheet's `channel` column (0-based index or name)"
            )
        return 0
    text = str(channel)
    if text in names:
        return names.index(text)
    if text.isdigit() and int(text) < count:
        return int(text)
    raise StackError(
        f"{path}: has no channel {channel!r}; its channels: {', '.join(names)} "
        f"(or 0 to {count - 1})"
    )


def read(path, *, channel=None, scene=None, timepoint=None):
    """One 3D stack (z, y, x) of a file, and the voxel size it declares.

    Parameters
    ----------
    path : str or os.PathLike
        A file of a kind in :data:`READERS`.
    channel : int or str, optional
        0-based index or name; needed where the file has several channels.
    scene : int or str, optional
        Scene index or id; needed where the file has several scenes.
    timepoint : int, optional
        0-based time point; needed where the file has several.

    Returns
    -------
    image : numpy.ndarray
    voxel_size_um : tuple of 3 float or None
        (z, y, x) in µm from the file's metadata; None if any is missing.

    Raises
    ------
    nuclei3d.io.StackError
        If the file is missing or unreadable, or what the row names is not in
        it; the message names the file.
    """
    image, kind = _open(path)
    try:
        image.set_scene(_scene_index(path, image, scene))
        frames = int(image.dims.T)
        if timepoint is None and frames > 1:
            raise StackError(
                f"{path}: holds {frames} time points; name one in the sheet's "
                "`timepoint` column (0-based), or leave it to the sheet's expansion"
            )
        t = int(timepoint or 0)
        if not 0 <= t < frames:
            raise StackError(f"{path}: has no time point {t} (0 to {frames - 1})")
        c = _channel_index(path, image, channel)
        data = np.asarray(image.get_image_data("ZYX", T=t, C=c))
        sizes = image.physical_pixel_sizes
    except StackError:
        raise
    except Exception as error:
        raise StackError(
            f"{path}: not a readable {kind} file ({type(error).__name__}: {error})"
        ) from None
    voxel = (sizes.Z, sizes.Y, sizes.X)
    voxel = None if any(v is None or not v > 0 for v in voxel) else voxel
    return data, None if voxel is None else tuple(float(v) for v in voxel)


class LayoutCache:
    """:func:`describe` of many files, kept in a JSON file between parses.

    An entry holds while the file's size and modification time stay; a sheet of
    10,000 rows is then expanded without opening any file again.

    Parameters
    ----------
    path : str or os.PathLike
        The JSON file (its folder is created on :meth:`save`).
    """

    def __init__(self, path):
        self.path = Path(path)
        try:
            self.entries = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.entries = {}
        self.changed = False

    @staticmethod
    def _stamp(path):
        stat = os.stat(path)
        return f"{stat.st_size}:{stat.st_mtime_ns}"

    def layout(self, path):
        """The file's :class:`Layout` (kept, or read now)."""
        key = str(Path(path).resolve())
        stamp = self._stamp(path)
        entry = self.entries.get(key)
        if entry is None or entry["stamp"] != stamp:
            layout = describe(path)
            entry = self.entries[key] = {"stamp": stamp, **asdict(layout)}
            self.changed = True
        return Layout(
            tuple(entry["scenes"]), int(entry["timepoints"]), tuple(entry["channels"])
        )

    def problem(self, path):
        """Why the file cannot be read, from its header only; None if it can.

        A missing file, a file bioio's reader cannot open (from its layout), or
        a plain TIFF tifffile cannot open (kept like layouts: each file is
        opened once).
        """
        if not os.path.exists(path):
            return f"{path}: file not found"
        if is_bioio_file(path):  # its layout, kept or read now, says
            try:
                self.layout(path)
            except StackError as error:
                return str(error)
            return None
        key = f"problem:{Path(path).resolve()}"
        stamp = self._stamp(path)
        entry = self.entries.get(key)
        if entry is None or entry["stamp"] != stamp:
            entry = self.entries[key] = {"stamp": stamp, "problem": _problem(path)}
            self.changed = True
        return entry["problem"]

    def save(self):
        """Write the entries back, if any changed."""
        if not self.changed:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staging = self.path.with_suffix(f".{os.getpid()}.tmp")
        staging.write_text(json.dumps(self.entries))
        os.replace(staging, self.path)
        self.changed = False


def _problem(path):
    """Why tifffile cannot open a plain TIFF's first series; None if it can."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            tif.series[0].shape  # noqa: B018 (reads the first series' header)
    except Exception as error:
        return f"{path}: not a readable TIFF ({type(error).__name__}: {error})"
    return None


def read_any(path, *, channel=None, scene=None, timepoint=None):
    """A 3D stack of a plain TIFF (:func:`nuclei3d.io.read_stack`) or of a file
    bioio reads (:func:`read`), and the voxel size its metadata declares."""
    from . import io

    if is_bioio_file(path):
        return read(path, channel=channel, scene=scene, timepoint=timepoint)
    if scene is not None or timepoint is not None:
        raise StackError(
            f"{path}: a plain TIFF has no scenes or time points to pick; leave the "
            "sheet's `scene` and `timepoint` empty (OME-TIFF: name it *.ome.tif)"
        )
    if channel is not None and not str(channel).isdigit():
        raise StackError(
            f"{path}: a plain TIFF's channels have no names; give `channel` as a "
            f"0-based index, not {channel!r}"
        )
    return io.read_stack(path, channel=None if channel is None else int(channel))


def _given(value):
    return value is not None and not (isinstance(value, float) and np.isnan(value))


def expand_sheet(rows, layout_of):
    """One row per stack: a file with several scenes or time points that its row
    does not pick becomes one row per scene and time point.

    Parameters
    ----------
    rows : list of dict
        Sample-sheet rows (``sample``, ``image``, optional ``scene`` and
        ``timepoint``; empty cells None or NaN).
    layout_of : callable
        ``path -> Layout or None`` (:meth:`LayoutCache.layout`), called for the
        files bioio reads; None (a missing or unreadable file) keeps the row as
        it is, and its stack fails with the file's error when it is read.

    Returns
    -------
    list of dict
        Expanded rows: sample ``<name>_s<scene>`` (two digits) where a row
        expands over scenes, ``<name>_t<time point>`` (three digits) over time
        points, with ``scene`` and ``timepoint`` set.

    Examples
    --------
    >>> layout = Layout(scenes=("a",), timepoints=3, channels=("dapi",))
    >>> [r["sample"] for r in expand_sheet(
    ...     [{"sample": "e1", "image": "e1.ome.zarr"}], lambda path: layout)]
    ['e1_t000', 'e1_t001', 'e1_t002']
    """
    expanded = []
    for row in rows:
        path = row["image"]
        layout = layout_of(path) if is_bioio_file(path) else None
        if layout is None:
            expanded.append(row)
            continue
        scene_given, time_given = _given(row.get("scene")), _given(row.get("timepoint"))
        scenes = [row["scene"]] if scene_given else list(range(len(layout.scenes)))
        times = [row["timepoint"]] if time_given else list(range(layout.timepoints))
        for scene in scenes:
            for time in times:
                name = row["sample"]
                if len(scenes) > 1:
                    name += f"_s{int(scene):02d}"
                if len(times) > 1:
                    name += f"_t{int(time):03d}"
                expanded.append(
                    {
                        **row,
                        "sample": name,
                        "scene": scene if scene_given or len(scenes) > 1 else None,
                        "timepoint": time if time_given or len(times) > 1 else None,
                    }
                )
    return expanded
