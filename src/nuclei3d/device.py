"""Choose the OpenCL device a job runs its kernels on.

Only devices that passed the probe (:mod:`nuclei3d.probe`: a tiny kernel built
and ran there) are candidates; each one that failed gets a warning in the job
log. Several platforms for the one CPU count as one device. Order of precedence:

1. A device pattern from the config (``device:``), case-insensitive, matched
   against device name, platform name and platform version (``"H100"``,
   ``"pocl"``, ``"Intel(R) OpenCL"``).
2. ``CUDA_VISIBLE_DEVICES`` (set by SLURM for ``--gpus``/``--gres`` jobs, and by
   users). NVIDIA's OpenCL driver already hides every other GPU, so the first
   NVIDIA device is the allocated one. Other OpenCL platforms ignore the variable;
   there its first entry is taken as an index into the GPUs (or, where there is
   none, into the devices of the best CPU runtime, e.g. PoCL with
   ``POCL_DEVICES``).
3. A GPU of its own: with several GPUs and no scheduler, each job locks one
   (:func:`claim_free_device`) so concurrent jobs spread over the GPUs instead of
   piling onto the first (Snakemake's ``gpu`` resource only counts, it does not
   say which GPU). The lock is an ``flock``, released when the job's process
   ends, however it ends. With one GPU, jobs share it.
4. The CPU, through its fastest working runtime (:func:`cpu_runtime_rank`), with
   a warning.

If no device works, :class:`nuclei3d.probe.NoWorkingDevice` says what was tried
and how to get one. The device chosen is logged, so every job's log says where
it ran.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .probe import NoWorkingDevice, cl_devices, list_devices, no_working_device_message
from .slabs import map_slabs, slab_count

__all__ = [
    "DeviceChoice",
    "DeviceMemoryError",
    "as_stack",
    "check_current_device_memory",
    "check_device_memory",
    "choose_device",
    "choose_opencl_device",
    "claim_free_device",
    "cpu_runtime_rank",
    "log_choice",
    "on_device",
    "opencl_devices",
    "project_kernel",
    "pull",
    "push",
    "push_float32",
    "rank_devices",
    "select_device",
]

log = logging.getLogger(__name__)
_HELD_LOCKS = []  # open lock files; the OS releases them when the process ends
_OPEN = {}  # index: OpenCL device pyclesperanto has open; position: its claim
_STAGING = {}  # OpenCL context -> pinned host buffer for push/pull
_PROGRAMS = {}  # (OpenCL context, kernel file) -> built program, project_kernel
_PROGRAMS_LOCK = threading.Lock()
_KERNELS = threading.local()  # .cache: (context, file, name) -> pyopencl.Kernel
KERNELS = Path(__file__).parent / "kernels"


GIB = 2**30


class DeviceMemoryError(MemoryError):
    """A stack does not fit into the OpenCL device's memory."""


def check_device_memory(
    what,
    shape,
    *,
    buffers,
    bytes_per_voxel=4,
    device_memory,
    max_buffer,
    device,
    is_gpu=True,
):
    """Refuse, with the sizes involved, a stack that would not fit the device.

    Parameters
    ----------
    what : str
        The stack (its file), named in the message.
    shape : tuple of int
        Largest image shape the stage holds on the device.
    buffers : int
        How many images of that shape the stage holds at once.
    bytes_per_voxel : int, optional
        4 for float32 and uint32 working images.
    device_memory, max_buffer : int
        The device's global memory and largest single allocation, in bytes.
    device : str
        Device name, for the message.
    is_gpu : bool, optional
        Whether it is a GPU (then the message offers the CPU).

    Raises
    ------
    DeviceMemoryError
        If one image exceeds `max_buffer` or all of them `device_memory`.

    Examples
    --------
    >>> check_device_memory("a.tif", (10, 10, 10), buffers=4, device_memory=GIB,
    ...                     max_buffer=GIB, device="GPU")
    """
    one = int(np.prod(shape, dtype=np.int64)) * bytes_per_voxel
    if one <= max_buffer and one * buffers <= device_memory:
        return
    remedy = (
        "run this stack on the CPU (`snakemake --config device=pocl` with its "
        "outputs as targets), use a larger resample.target_voxel_size_um, or crop it"
        if is_gpu
        else "raise PoCL's limit (POCL_MEMORY_LIMIT=<GiB>), use a larger "
        "resample.target_voxel_size_um, or crop it"
    )
    raise DeviceMemoryError(
        f"{what}: too large for {device}: a {shape} image takes {one / GIB:.2f} GiB "
        f"(largest buffer the device allows: {max_buffer / GIB:.2f} GiB) and this "
        f"stage holds about {buffers} of them ({one * buffers / GIB:.2f} GiB of "
        f"{device_memory / GIB:.2f} GiB); {remedy}"
    )


def check_current_device_memory(what, shape, *, buffers):
    """:func:`check_device_memory` for pyclesperanto's current device."""
    import pyclesperanto_prototype as cle
    import pyopencl as cl

    device = cle.get_device().device
    check_device_memory(
        what,
        shape,
        buffers=buffers,
        device_memory=device.global_mem_size,
        max_buffer=device.max_mem_alloc_size,
        device=device.name,
        is_gpu=bool(device.type & cl.device_type.GPU),
    )


@dataclass(frozen=True)
class DeviceChoice:
    """Which OpenCL device was chosen and why.

    Attributes
    ----------
    index : int
        Position in the flat list of OpenCL devices (all platforms, in order).
    name : str
        Device name as OpenCL reports it.
    platform : str
        Platform name.
    is_gpu : bool
        Whether OpenCL reports a GPU.
    reason : str
        Which rule picked it, for the log.
    version, driver : str
        Platform version and driver version (for the log and the run's record).
    """

    index: int
    name: str
    platform: str
    is_gpu: bool
    reason: str
    version: str = ""
    driver: str = ""


def claim_free_device(lock_dir, count, *, poll_seconds=0.2, held=None, first=0):
    """Lock the first free one of `count` devices, trying `first` first.

    Parameters
    ----------
    lock_dir : str or os.PathLike
        Node-local folder for the lock files ``device<i>.lock``.
    count : int
        Number of devices to choose from.
    poll_seconds : float, optional
        Wait between rounds while every device is taken.
    held : list, optional
        Where the open lock file goes; closing it releases the device. By
        default it is kept until this process ends.
    first : int, optional
        Position tried first (the device this process has open already).

    Returns
    -------
    int
        Position of the claimed device, ``0 <= position < count``.

    Notes
    -----
    ``fcntl.flock`` locks vanish with the process, also on SIGKILL or a crash, so
    no lock outlives its job.
    """
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    waiting = False
    while True:
        for position in [first, *(p for p in range(count) if p != first)]:
            handle = open(lock_dir / f"device{position}.lock", "a")  # noqa: SIM115
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            (_HELD_LOCKS if held is None else held).append(handle)
            return position
        if not waiting:
            log.info("all %d devices are taken by other jobs; waiting", count)
            waiting = True
        time.sleep(poll_seconds)


def cpu_runtime_rank(device):
    """Sort key of a CPU device's runtime: the fastest first.

    Intel's CPU runtime, then PoCL (release builds before builds with assertions,
    such as Debian's; then the newest version), then any other: the order of
    their speed side by side (benchmarks/RESULTS.md, "CPU runtimes").

    Examples
    --------
    >>> from nuclei3d.probe import OpenCLDevice as D
    >>> debian = D(0, "pthread", "Portable Computing Language",
    ...            "OpenCL 3.0 PoCL 3.1+debian  Linux, None+Asserts, LLVM 15.0.6")
    >>> pip = D(1, "pthread", "Portable Computing Language",
    ...         "OpenCL 3.0 PoCL 3.0-rc2  Linux, Release, LLVM 14.0.6")
    >>> intel = D(2, "Xeon", "Intel(R) OpenCL", "OpenCL 3.0 LINUX")
    >>> [d.index for d in sorted([debian, pip, intel], key=cpu_runtime_rank)]
    [2, 1, 0]
    """
    if device.platform.startswith("Intel(R) OpenCL"):
        return (0,)
    pocl = re.search(r"PoCL (\d+)\.(\d+)", device.version)
    if pocl:
        release = re.search(r"\bRelease\b", device.version) is not None
        return (1, not release, *(-int(part) for part in pocl.groups()))
    return (2,)


def rank_devices(devices):
    """The devices a job may take, best first, and the ones it may lock among.

    GPUs come first, in OpenCL's order. Several platforms can expose the one CPU
    (pyopencl's PoCL, the system's PoCL, Intel's runtime): they count as one
    device, that of the best runtime (:func:`cpu_runtime_rank`); a platform that
    lists several CPU devices (``POCL_DEVICES="pthread pthread"``) keeps them
    all. Other device types come last.

    Parameters
    ----------
    devices : list of nuclei3d.probe.OpenCLDevice
        Working devices.

    Returns
    -------
    ranked : list of OpenCLDevice
    peers : list of OpenCLDevice
        The first tier (the GPUs, else the CPU platform's devices, else the
        rest): devices of equal rank that concurrent jobs spread over.
    """
    gpus = [d for d in devices if d.is_gpu]
    cpus = [d for d in devices if d.is_cpu and not d.is_gpu]
    rest = [d for d in devices if not d.is_gpu and not d.is_cpu]
    if cpus:
        best = min(cpus, key=lambda d: (cpu_runtime_rank(d), d.index))
        same = (best.platform, best.version)
        cpus = [d for d in cpus if (d.platform, d.version) == same]
    ranked = gpus + cpus + rest
    return ranked, gpus or cpus or rest


def choose_device(devices, *, pattern="", cuda_visible_devices=None, claim=None):
    """Pick a device from the probed devices, by the precedence above.

    Parameters
    ----------
    devices : sequence of nuclei3d.probe.OpenCLDevice
        Every OpenCL device, in the order OpenCL lists them, with the probe's
        verdict; only working ones are chosen.
    pattern : str, optional
        Case-insensitive substring of the wanted device's name, its platform's
        name or version; empty for none.
    cuda_visible_devices : str or None, optional
        Value of ``CUDA_VISIBLE_DEVICES``; None or empty when unset.
    claim : callable, optional
        ``claim(n)`` returns the position of a free device among `n` candidates
        (e.g. :func:`claim_free_device`); used only when there are several.
        Without it, the first candidate is taken.

    Returns
    -------
    DeviceChoice

    Raises
    ------
    nuclei3d.probe.NoWorkingDevice
        If no device (of those `pattern` matches) works.
    RuntimeError
        If `pattern` matches no device.

    Examples
    --------
    >>> from nuclei3d.probe import OpenCLDevice as D
    >>> devs = [D(0, "pthread-cpu", "Portable Computing Language"),
    ...         D(1, "NVIDIA H100", "NVIDIA CUDA", is_gpu=True, is_cpu=False)]
    >>> choose_device(devs).name
    'NVIDIA H100'
    >>> choose_device(devs, pattern="pthread").name
    'pthread-cpu'
    """
    if pattern:
        wanted = pattern.lower()
        matched = [
            d
            for d in devices
            if wanted in f"{d.name}\n{d.platform}\n{d.version}".lower()
        ]
        if not matched:
            names = ", ".join(repr(str(d)) for d in devices) or "none"
            raise RuntimeError(
                f"no OpenCL device matches {pattern!r} (config key `device`); "
                f"available: {names}"
            )
    else:
        matched = list(devices)
    working = [d for d in matched if d.works]
    if not working:
        raise NoWorkingDevice(no_working_device_message(matched, pattern=pattern))
    ranked, peers = rank_devices(working)
    gpus = [d for d in ranked if d.is_gpu]

    def choice(device, reason):
        return DeviceChoice(
            device.index,
            device.name,
            device.platform,
            device.is_gpu,
            reason,
            device.version,
            device.driver,
        )

    visible = (cuda_visible_devices or "").strip()
    if visible:
        nvidia = [d for d in gpus if "nvidia" in d.platform.lower()]
        if nvidia:
            return choice(
                nvidia[0], f"CUDA_VISIBLE_DEVICES={visible} (NVIDIA driver filters)"
            )
        first = visible.split(",")[0].strip()
        if first.isdigit() and int(first) < len(peers):
            return choice(
                peers[int(first)],
                f"CUDA_VISIBLE_DEVICES={visible} (device {first} of "
                f"{len(peers)} {'GPUs' if gpus else 'OpenCL devices'})",
            )
        log.info(
            "CUDA_VISIBLE_DEVICES=%s names no device among %d %s; not used",
            visible,
            len(peers),
            "GPUs" if gpus else "OpenCL devices of the best CPU runtime",
        )
    if not gpus:
        log.warning(
            "no GPU visible to OpenCL: running on the CPU (%s); this is much slower",
            ranked[0],
        )
    kind = "GPU" if gpus else "OpenCL device"
    if claim is not None and len(peers) > 1:
        position = claim(len(peers))
        reason = f"{kind} {position} of {len(peers)}, locked for this job"
        return choice(peers[position], reason)
    if pattern:
        return choice(ranked[0], f"name matches config device pattern {pattern!r}")
    return choice(
        ranked[0], "first GPU" if gpus else "no GPU found, fastest CPU runtime"
    )


def opencl_devices():
    """Every OpenCL device of every platform, in order (:class:`DeviceChoice` index).

    This environment's CPU runtimes are registered first
    (:func:`nuclei3d.probe.cl_devices`).
    """
    return cl_devices()


def choose_opencl_device(devices, *, pattern="", claim=None):
    """:func:`choose_device` over probed devices and this process' GPU list.

    The GPU list is ``CUDA_VISIBLE_DEVICES`` (set by SLURM or by hand).

    Parameters
    ----------
    devices : list of nuclei3d.probe.OpenCLDevice
        As :func:`nuclei3d.probe.probe_devices` lists them.
    pattern, claim
        As for :func:`choose_device`.

    Returns
    -------
    DeviceChoice
    """
    return choose_device(
        devices,
        pattern=pattern,
        cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
        claim=claim,
    )


def select_device(pattern="", *, lock_dir=None, cache_dir=None, held=None):
    """Make the chosen device pyclesperanto's current device, and log it.

    The device is handed to ``cle.select_device`` through its ``score_key``: the
    chosen device scores highest, so pyclesperanto opens exactly that one (two
    GPUs of one model have the same name, so a name would not do). A process
    that has the chosen device open already (a warm stage process' earlier job)
    keeps it, and its claim tries that device first.

    Parameters
    ----------
    pattern : str, optional
        Config ``device`` name pattern, empty for none.
    lock_dir : str or os.PathLike, optional
        Where to lock a device of its own when there are several (see
        :func:`claim_free_device`); None never locks.
    cache_dir : str or os.PathLike, optional
        Where the probe's verdicts are kept (:func:`nuclei3d.probe.probe_devices`).
    held : list, optional
        Where a claimed device's lock file goes (closing it releases the
        device); by default it is kept until this process ends.

    Returns
    -------
    DeviceChoice
    """
    import pyclesperanto_prototype as cle

    def claim(count):
        position = claim_free_device(
            lock_dir, count, held=held, first=_OPEN.get("position", 0)
        )
        _OPEN["position"] = position
        return position

    chosen = choose_opencl_device(
        list_devices(cache_dir), pattern=pattern, claim=claim if lock_dir else None
    )
    if _OPEN.get("index") != chosen.index:
        device = opencl_devices()[chosen.index]
        cle.select_device(score_key=lambda candidate: candidate == device)
        _OPEN["index"] = chosen.index
    log_choice(chosen)
    return chosen


def log_choice(choice):
    """Log which device a job runs on, and why (every job's log has this line).

    ``OpenCL device <i>: <name> on <platform> [<version>; driver <driver>]
    (<reason>)``; the run's record (:mod:`nuclei3d.provenance`) reads it.
    """
    log.info(
        "OpenCL device %d: %s on %s [%s; driver %s] (%s)",
        choice.index,
        choice.name,
        choice.platform,
        choice.version,
        choice.driver,
        choice.reason,
    )


def _staging(device, nbytes):
    """A pinned (page-locked) host buffer of at least `nbytes` for this context."""
    import pyopencl as cl

    buffer = _STAGING.get(device.context)
    if buffer is None or buffer.size < nbytes:
        flags = cl.mem_flags.READ_WRITE | cl.mem_flags.ALLOC_HOST_PTR
        buffer = cl.Buffer(device.context, flags, max(nbytes, 1))
        _STAGING[device.context] = buffer
    return buffer


def push(array):
    """Copy a host array onto pyclesperanto's current device, through pinned memory.

    Same result as ``cle.push`` (same dtype and shape), but the copy goes through
    a page-locked staging buffer that is kept for the next call: NVIDIA's OpenCL
    copies from ordinary (pageable) memory at under 1 GB/s on the H100 node, from
    pinned memory at the bus's speed (``benchmarks/step_profile.py``).

    Parameters
    ----------
    array : array_like
        Any array ``cle.push`` accepts.

    Returns
    -------
    pyclesperanto_prototype.OCLArray
    """
    import pyclesperanto_prototype as cle
    import pyopencl as cl

    array = np.ascontiguousarray(array)
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    out = cle.create(array.shape, array.dtype)
    if array.nbytes == 0:
        return out
    device = cle.get_device()
    staging = _staging(device, array.nbytes)
    mapped, _ = cl.enqueue_map_buffer(
        device.queue,
        staging,
        cl.map_flags.WRITE_INVALIDATE_REGION,
        0,
        (array.nbytes,),
        np.uint8,
    )
    mapped[:] = array.reshape(-1).view(np.uint8)
    mapped.base.release(device.queue)
    cl.enqueue_copy(device.queue, out.data, staging, byte_count=array.nbytes)
    return out


# numpy dtype (without byte order) -> kernel of kernels/filters.cl
_TO_FLOAT = {
    "u1": "uchar_to_float",
    "i1": "char_to_float",
    "u2": "ushort_to_float",
    "i2": "short_to_float",
    "u4": "uint_to_float",
    "i4": "int_to_float",
}


def push_float32(array):
    """:func:`push` a host array in its own dtype, and make it float32 on the device.

    A uint8 stack crosses the bus in a quarter of float32's bytes; the
    conversion is one kernel (``kernels/filters.cl``, as ``cle.copy`` converts),
    exact for 8- and 16-bit integers.

    Parameters
    ----------
    array : array_like

    Returns
    -------
    pyclesperanto_prototype.OCLArray
        float32 image of the same shape.
    """
    import pyclesperanto_prototype as cle

    pushed = push(array)
    if pushed.dtype == np.float32:
        return pushed
    out = cle.create(pushed.shape, np.float32)
    name = _TO_FLOAT.get(pushed.dtype.str[1:])
    if name is None:
        return cle.copy(pushed, out)
    kernel = project_kernel(pushed.context, "filters.cl", name)
    kernel(pushed.queue, (pushed.size,), None, pushed.data, out.data)
    return out


def pull(image):
    """Copy a device image to a new host array, through pinned memory.

    The counterpart of :func:`push`; a NumPy array is returned as it is.

    Parameters
    ----------
    image : pyclesperanto_prototype.OCLArray or numpy.ndarray

    Returns
    -------
    numpy.ndarray
    """
    import pyclesperanto_prototype as cle
    import pyopencl as cl

    if isinstance(image, np.ndarray):
        return image
    out = np.empty(image.shape, image.dtype)
    if out.nbytes == 0:
        return out
    device = cle.get_device()
    staging = _staging(device, out.nbytes)
    cl.enqueue_copy(device.queue, staging, image.data, byte_count=out.nbytes)
    mapped, _ = cl.enqueue_map_buffer(
        device.queue, staging, cl.map_flags.READ, 0, (out.nbytes,), np.uint8
    )
    # A large copy into fresh memory is bound by its page faults: in slabs, in
    # threads (the large benchmark stack's labels: 35 MB).
    flat = out.reshape(-1).view(np.uint8)

    def copy(part):
        flat[part] = mapped[part]

    map_slabs(copy, flat.size, slab_count(flat.size, 2**24))
    mapped.base.release(device.queue)
    return out


def project_kernel(context, file, name):
    """Kernel `name` of the project's ``kernels/<file>``, built once per context.

    For kernels launched straight through pyopencl, without pyclesperanto's
    set-up of each launch (0.3-0.6 ms): plain OpenCL on contiguous buffers.

    Parameters
    ----------
    context : pyopencl.Context
    file : str
        File name in ``src/nuclei3d/kernels/``.
    name : str
        Kernel name.

    Returns
    -------
    pyopencl.Kernel
        The calling thread's kernel object, kept for its next call: making one
        costs ~0.1 ms (pyopencl sets up its launcher), 5 times a launch. Each
        launch sets all its arguments, and threads do not share the objects.
    """
    kernels = getattr(_KERNELS, "cache", None)
    if kernels is None:
        kernels = _KERNELS.cache = {}
    key = (context, file, name)
    if key not in kernels:
        import pyopencl as cl

        with _PROGRAMS_LOCK:
            if (context, file) not in _PROGRAMS:
                source = (KERNELS / file).read_text()
                _PROGRAMS[context, file] = cl.Program(context, source).build()
            kernels[key] = cl.Kernel(_PROGRAMS[context, file], name)
    return kernels[key]


def as_stack(image):
    """`image` as a stage's 3D input: a device image or array as it is, a list as
    an array.

    Raises
    ------
    ValueError
        If it does not have three axes (z, y, x).
    """
    if isinstance(image, (list, tuple)):
        image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"`image` (shape {image.shape}) must be 3D (z, y, x)")
    return image


def on_device(image):
    """`image` on the current device: pushed (:func:`push`) unless it is there."""
    from pyopencl.array import Array

    return image if isinstance(image, Array) else push(np.asarray(image))
