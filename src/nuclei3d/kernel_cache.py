"""Where compiled OpenCL kernels are cached, and safe sharing of that cache.

Compiling a kernel takes far longer than running it, so the OpenCL drivers keep
compiled programs on disk: PoCL in ``POCL_CACHE_DIR``, NVIDIA in ``CUDA_CACHE_PATH``;
pytools keeps pyopencl's kernel invokers under ``XDG_CACHE_HOME``.
:func:`use_kernel_cache` points all of them into one folder (by default one per user
and node, see ``kernel_cache_dir`` in the config), and :func:`build_lock` lets one
process at a time build programs there.

pyopencl's own cache of program binaries, which it uses for runtimes that keep none
(Intel's CPU runtime among them), stays off (``PYOPENCL_NO_CACHE``): it guards its
folder with a lock file that a process killed meanwhile (a cancelled SLURM job, a
kill -9) leaves behind, and from then on every build there waits a minute and
fails. Those runtimes build their programs from source once in each stage
process: about a second for the whole pipeline on Intel's CPU runtime
(benchmarks/RESULTS.md).

Why a lock: 16 processes compiling the same programs at once into one empty PoCL
cache made 2 to 5 of them fail with ``BUILD_PROGRAM_FAILURE`` on this project's
CI machine (PoCL reads another process' half-written cache entry); with builds
serialised, none failed (``tests/test_gpu_sharing.py``). A job holds the lock
while it runs its first stack, which builds every program the stage uses, until
that stage has once built on that device into the cache (:func:`first_build`);
after that, jobs start without waiting for each other. The lock is an ``flock``,
which the OS drops when its process ends, so a killed job never leaves a stale
lock behind.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from contextlib import ExitStack, contextmanager
from pathlib import Path

__all__ = ["CACHE_VARIABLES", "build_lock", "first_build", "use_kernel_cache"]

CACHE_VARIABLES = {
    "XDG_CACHE_HOME": "xdg",  # pytools: pyopencl's kernel invokers
    "POCL_CACHE_DIR": "pocl",  # PoCL's compiled kernels
    "CUDA_CACHE_PATH": "nvidia",  # NVIDIA driver's compiled kernels
}


def use_kernel_cache(folder):
    """Cache compiled kernels in `folder` (one sub-folder per cache).

    Call before pyopencl is imported: it reads ``PYOPENCL_NO_CACHE`` then, and the
    drivers read their variables when the first OpenCL context is made.

    Parameters
    ----------
    folder : str or os.PathLike
    """
    folder = Path(folder)
    for variable, sub in CACHE_VARIABLES.items():
        (folder / sub).mkdir(parents=True, exist_ok=True)
        os.environ[variable] = str(folder / sub)
    os.environ["PYOPENCL_NO_CACHE"] = "1"


@contextmanager
def build_lock(folder):
    """Hold the kernel cache's build lock: one process at a time builds there.

    Parameters
    ----------
    folder : str or os.PathLike
        The folder given to :func:`use_kernel_cache`.
    """
    with open(Path(folder) / "build.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released on close, or process death
        yield


@contextmanager
def first_build(folder, key):
    """:func:`build_lock` until the programs of `key` were once built in `folder`.

    Parameters
    ----------
    folder : str or os.PathLike
        The folder given to :func:`use_kernel_cache`.
    key : str
        What builds: a stage on a device and driver. Marked as built when the
        first block that held the lock for it ends without an error; processes
        that waited for the lock meanwhile then go on without holding it.
    """
    marker = Path(folder) / "built" / hashlib.sha256(key.encode()).hexdigest()[:32]
    if marker.exists():
        yield
        return
    with ExitStack() as lock:
        lock.enter_context(build_lock(folder))
        if marker.exists():  # built by the process that held the lock before
            lock.close()
            yield
            return
        yield
        marker.parent.mkdir(exist_ok=True)
        marker.touch()
