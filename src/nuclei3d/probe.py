"""Which OpenCL devices work on this node.

A device is used only after a tiny kernel built and ran on it: an OpenCL platform
can list a device and still fail every build (pyopencl's bundled PoCL, LLVM 14,
on CPUs that LLVM does not know: ``error: unknown target CPU 'generic'``), or
end the process that builds (an invalid LLVM option in Intel's CPU runtime).
So the probe runs in a child process (``python -m nuclei3d.probe --worker``),
one device after the other, and a device whose probe crashed or hung counts as
failed. Verdicts are kept in a JSON file per node (:data:`VERDICTS`, beside the
kernel cache) under a key of host, platform, device, driver version and the
environment variables that change how the runtimes compile, so a job reads
them in milliseconds and a new driver is probed again.

Before the first platform is listed, :func:`register_runtimes` points the ICD
loader at the system's runtimes (``/etc/OpenCL/vendors``, or the folder of a
user's ``OCL_ICD_VENDORS``) plus the CPU runtimes installed into this Python
environment (Intel's, from PyPI's ``intel-opencl-rt``), so that a plain
``.venv/bin/snakemake`` finds them. pyopencl's bundled PoCL is always listed
too (its loader reads its own folder).

Run ``python -m nuclei3d.probe`` to see what a node offers and which device a
job would take.
"""

from __future__ import annotations

import argparse
import fcntl
import getpass
import hashlib
import json
import logging
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

__all__ = [
    "ENVIRONMENT_RUNTIMES",
    "INTEL_CPU_RUNTIME",
    "VERDICTS",
    "NoWorkingDevice",
    "OpenCLDevice",
    "cl_devices",
    "first_error_line",
    "list_devices",
    "no_working_device_message",
    "probe_devices",
    "register_runtimes",
]

log = logging.getLogger(__name__)

SYSTEM_VENDORS = Path("/etc/OpenCL/vendors")
# ICD file name -> library that a pip or conda package puts into <prefix>/lib.
ENVIRONMENT_RUNTIMES = {"nuclei3d-intel-cpu.icd": "libintelocl.so"}
VERDICTS = "opencl-devices.json"
# Intel's CPU runtime as requirements.txt pins it (tests/test_probe.py checks).
INTEL_CPU_RUNTIME = "intel-opencl-rt==2026.2.0 intel-cmplr-lib-rt==2026.2.0"
PROBE_TIMEOUT_S = 120
# Environment variables that change how a runtime compiles or which devices it
# shows: part of a verdict's key. Cache folders are not.
BUILD_VARIABLES = re.compile(r"^(POCL_|CL_CONFIG_|PYOPENCL_BUILD)")
NOT_BUILD_VARIABLES = {"POCL_CACHE_DIR"}
PROBE_SOURCE = """
__kernel void probe(__global const float *a, __global float *b) {
    const size_t i = get_global_id(0);
    b[i] = 2.0f * a[i] + 1.0f;
}
"""
FIXES = """\
Any one of these gives the workflow a device:
  1. GPU: install the GPU's OpenCL driver and register it (one ICD file), e.g.
     echo /usr/local/nvidia/lib64/libnvidia-opencl.so.1 > /etc/OpenCL/vendors/nvidia.icd
     (without root: OCL_ICD_VENDORS=<a folder holding that file>).
  2. CPU, no root (x86-64 Linux): Intel's CPU runtime from PyPI, into this
     environment; the workflow registers it itself:
     {python} -m pip install {intel}
  3. CPU, root: apt install pocl-opencl-icd (Debian/Ubuntu).
Check a node with: {python} -m nuclei3d.probe"""


class NoWorkingDevice(RuntimeError):
    """No OpenCL device passed the probe; the message says what to do."""


@dataclass(frozen=True)
class OpenCLDevice:
    """One OpenCL device as the probe saw it.

    Attributes
    ----------
    index : int
        Position in the flat list of devices (all platforms, in order).
    name, platform, version, driver : str
        Device name, platform name, platform version and driver version.
    is_gpu, is_cpu : bool
        OpenCL's device type.
    error : str or None
        Why it failed the probe (first error line); None if it works.
    """

    index: int
    name: str
    platform: str
    version: str = ""
    is_gpu: bool = False
    is_cpu: bool = True
    error: str | None = None
    driver: str = ""

    @property
    def works(self):
        return self.error is None

    def __str__(self):
        return f"{self.name} on {self.platform} ({self.version})"


def _default_registry():
    return Path(tempfile.gettempdir()) / f"nuclei3d-opencl-{getpass.getuser()}"


def register_runtimes(prefix=None, registry=None):
    """Let the ICD loader find the system's runtimes and this environment's.

    Writes a folder of ICD files, the system's (or those of the folder a user's
    ``OCL_ICD_VENDORS`` names) plus one per runtime of
    :data:`ENVIRONMENT_RUNTIMES` found in ``<prefix>/lib``, and sets
    ``OCL_ICD_VENDORS`` to it. Call before the first OpenCL platform is listed
    in this process; the folder is named by its contents, so concurrent jobs
    write the same one.

    Parameters
    ----------
    prefix : str or os.PathLike, optional
        The Python environment (default: ``sys.prefix``).
    registry : str or os.PathLike, optional
        Where the folders go (default: a per-user folder in the temp folder).

    Returns
    -------
    list of str
        The libraries added from the environment (empty: nothing changed).
    """
    prefix = Path(prefix or sys.prefix)
    added = {
        name: str(prefix / "lib" / library)
        for name, library in ENVIRONMENT_RUNTIMES.items()
        if (prefix / "lib" / library).exists()
    }
    if not added:
        return []
    source = Path(os.environ.get("OCL_ICD_VENDORS") or SYSTEM_VENDORS)
    icds = {}
    if source.is_file():
        icds[source.name] = source.read_text()
    elif source.is_dir():
        icds.update((f.name, f.read_text()) for f in sorted(source.glob("*.icd")))
    if all(icds.get(name, "").strip() == path for name, path in added.items()):
        return []  # already registered (a child of a registered process)
    icds.update((name, f"{path}\n") for name, path in added.items())
    digest = hashlib.sha256(json.dumps(icds, sort_keys=True).encode()).hexdigest()
    folder = Path(registry or _default_registry()) / digest[:16]
    if not folder.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=folder.parent))
        for name, text in icds.items():
            (staging / name).write_text(text)
        try:
            staging.rename(folder)
        except OSError:  # another process made it first
            for file in staging.iterdir():
                file.unlink()
            staging.rmdir()
    os.environ["OCL_ICD_VENDORS"] = str(folder)
    return list(added.values())


def cl_devices():
    """Every pyopencl device of every platform, in order, runtimes registered.

    A platform that lists no device is left out; no platform gives an empty list.
    """
    import pyopencl as cl

    register_runtimes()
    try:
        platforms = cl.get_platforms()
    except cl.LogicError:  # PLATFORM_NOT_FOUND_KHR: no ICD at all
        return []
    devices = []
    for platform in platforms:
        try:
            devices.extend(platform.get_devices())
        except cl.Error as error:  # a platform with no device of its own
            log.debug("platform %s lists no device: %s", platform.name, error)
    return devices


def first_error_line(text):
    """The line of an OpenCL error text that says what went wrong.

    pyopencl's build errors repeat the status and then give the compiler's log
    after a ``Build on <device>:`` line: its first line with ``error`` in it,
    else its first line, else the text's first line.

    Examples
    --------
    >>> first_error_line("clBuildProgram failed: BUILD_PROGRAM_FAILURE - x\\n\\n"
    ...     "Build on <pyopencl.Device 'cpu'>:\\n\\nwarning: w\\n"
    ...     "error: unknown target CPU 'generic'\\n")
    "error: unknown target CPU 'generic'"
    >>> first_error_line("Context failed: DEVICE_NOT_AVAILABLE")
    'Context failed: DEVICE_NOT_AVAILABLE'
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return "(no message)"
    build = [i for i, line in enumerate(lines) if line.startswith("Build on ")]
    log_lines = (
        [line for line in lines[build[0] + 1 :] if not line.startswith("(options:")]
        if build
        else []
    )
    for line in log_lines:
        if "error" in line.lower():
            return line
    return log_lines[0] if log_lines else lines[0]


def _probe_one(device):
    """Build and run the probe kernel on `device`; None if it works, else why."""
    import numpy as np
    import pyopencl as cl

    try:
        context = cl.Context(devices=[device])
        queue = cl.CommandQueue(context)
        # A fresh source each time: a compiler that fails must not be hidden by
        # a binary cached when it worked.
        source = f"{PROBE_SOURCE}// {time.time_ns()} {os.getpid()}\n"
        kernel = cl.Kernel(cl.Program(context, source).build(), "probe")
        host = np.arange(256, dtype=np.float32)
        flags = cl.mem_flags
        a = cl.Buffer(context, flags.READ_ONLY | flags.COPY_HOST_PTR, hostbuf=host)
        b = cl.Buffer(context, flags.WRITE_ONLY, host.nbytes)
        kernel(queue, host.shape, None, a, b)
        out = np.empty_like(host)
        cl.enqueue_copy(queue, out, b)
        queue.finish()
    except Exception as error:
        return first_error_line(str(error))
    if not np.array_equal(out, 2 * host + 1):
        return "the probe kernel ran but computed wrong values"
    return None


def _worker(indices):
    """Probe the devices at `indices`, one JSON line each (the child process)."""
    devices = cl_devices()
    for index in indices:
        error = _probe_one(devices[index])
        print(json.dumps({"index": index, "error": error}), flush=True)


def _describe(device, index):
    import pyopencl as cl

    return OpenCLDevice(
        index=index,
        name=device.name.strip(),
        platform=device.platform.name.strip(),
        version=device.platform.version.strip(),
        is_gpu=bool(device.type & cl.device_type.GPU),
        is_cpu=bool(device.type & cl.device_type.CPU),
        driver=device.driver_version.strip(),
    )


def _key(device):
    """What a verdict depends on: node, runtime, device, driver, build settings."""
    settings = sorted(
        (name, value)
        for name, value in os.environ.items()
        if BUILD_VARIABLES.match(name) and name not in NOT_BUILD_VARIABLES
    )
    parts = [
        socket.gethostname(),
        device.platform.name,
        device.platform.version,
        device.name,
        device.version,
        device.driver_version,
        settings,
    ]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:24]


def _read_verdicts(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def _write_verdicts(path, new):
    """Add `new` to the verdict file (atomically; concurrent writers may race,
    and a lost verdict is only probed again)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    verdicts = {**_read_verdicts(path), **new}
    handle, staging = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(handle, "w") as stream:
        json.dump(verdicts, stream, indent=1, sort_keys=True)
    os.replace(staging, path)


def _probe_in_child(indices, timeout_s=PROBE_TIMEOUT_S):
    """{index: error or None} for `indices`, probed in child processes.

    The device a child was probing when it died or timed out failed; the rest
    are probed by a new child.
    """
    package = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYOPENCL_NO_CACHE="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package, env.get("PYTHONPATH")]))
    verdicts, left = {}, list(indices)
    while left:
        command = [sys.executable, "-m", "nuclei3d.probe", "--worker", *map(str, left)]
        try:
            child = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=timeout_s
            )
            output, errors, status = child.stdout, child.stderr, child.returncode
        except subprocess.TimeoutExpired as expired:
            output = (expired.stdout or b"").decode(errors="replace")
            errors, status = f"no answer within {timeout_s} s", None
        for line in output.splitlines():
            if line.startswith("{"):
                answer = json.loads(line)
                verdicts[answer["index"]] = answer["error"]
        left = [index for index in left if index not in verdicts]
        if left:
            cause = "the probe hung" if status is None else f"exit status {status}"
            verdicts[left.pop(0)] = (
                f"the probe process died ({cause}): {first_error_line(errors)}"
            )
    return verdicts


@contextmanager
def _probe_lock(path):
    """One process of a node probes at a time; the others then read its verdicts."""
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released on close, or process death
        yield


_MEMO = {}  # verdict file (or None) -> [OpenCLDevice], for this process


def probe_devices(cache_dir=None, *, refresh=False):
    """Every OpenCL device of this node, with the probe's verdict.

    Registers this environment's runtimes first (:func:`register_runtimes`).
    Verdicts come from ``<cache_dir>/opencl-devices.json`` where it has them;
    the other devices are probed (in a child process) and their verdicts saved.
    Within a process the answer is kept.

    Parameters
    ----------
    cache_dir : str or os.PathLike, optional
        Node-local folder for the verdicts (the kernel cache); None probes
        every device and keeps no file.
    refresh : bool, optional
        Probe again, ignoring kept verdicts.

    Returns
    -------
    list of OpenCLDevice
        In OpenCL's order (``index``); ``error`` None for the working ones.
    """
    path = Path(cache_dir) / VERDICTS if cache_dir else None
    if not refresh and path in _MEMO:
        return _MEMO[path]
    devices = cl_devices()
    keys = [_key(device) for device in devices]
    plain = [_describe(device, i) for i, device in enumerate(devices)]
    with _probe_lock(path):
        kept = {} if refresh or path is None else _read_verdicts(path)
        unknown = [i for i, key in enumerate(keys) if key not in kept]
        if unknown:
            found = _probe_in_child(unknown)
            new = {
                keys[i]: {"error": found[i], "device": str(plain[i])} for i in unknown
            }
            kept = {**kept, **new}
            if path is not None:
                _write_verdicts(path, new)
    described = [replace(d, error=kept[keys[d.index]]["error"]) for d in plain]
    _MEMO[path] = described
    return described


def list_devices(cache_dir=None, logger=None):
    """:func:`probe_devices`, with one warning per failed device in `logger`."""
    devices = probe_devices(cache_dir)
    for device in devices:
        if not device.works:
            (logger or log).warning(
                "skipping OpenCL device %s: it failed a test build: %s",
                device,
                device.error,
            )
    return devices


def no_working_device_message(devices, *, pattern=""):
    """The one message for a node where no (matching) device works.

    Parameters
    ----------
    devices : list of OpenCLDevice
        What was tried.
    pattern : str, optional
        The config's ``device`` pattern, if it narrowed the choice.

    Examples
    --------
    >>> print(no_working_device_message([]).splitlines()[0])  # doctest: +ELLIPSIS
    No working OpenCL device on ...: no OpenCL platform lists a device.
    """
    if not devices:
        head = "no OpenCL platform lists a device."
        tried = []
    else:
        which = f" matching {pattern!r}" if pattern else ""
        head = f"every OpenCL device{which} failed a test build. Tried:"
        tried = [f"  - {device}: {device.error}" for device in devices]
    fixes = FIXES.format(python=sys.executable, intel=INTEL_CPU_RUNTIME)
    return "\n".join(
        [f"No working OpenCL device on {socket.gethostname()}: {head}", *tried, fixes]
    )


def main(argv=None):
    """``python -m nuclei3d.probe``: the node's devices, verdicts and the choice."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--cache-dir", help="folder of kept verdicts (kernel cache)")
    parser.add_argument("--device", default="", help="config `device` pattern")
    parser.add_argument("--refresh", action="store_true", help="probe again")
    parser.add_argument("--quiet", action="store_true", help="print errors only")
    parser.add_argument("--worker", nargs="+", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.worker)
        return 0
    from .device import choose_device

    devices = probe_devices(args.cache_dir, refresh=args.refresh)
    try:
        chosen = choose_device(devices, pattern=args.device)
    except RuntimeError as error:  # NoWorkingDevice, or no device matches
        print(error, file=sys.stderr)
        return 1
    if not args.quiet:
        for device in devices:
            verdict = "works" if device.works else f"FAILED: {device.error}"
            print(f"{device.index}: {device}: {verdict}")
        print(
            f"a job here runs on device {chosen.index}: {chosen.name} "
            f"on {chosen.platform} ({chosen.reason})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
