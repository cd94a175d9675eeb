"""Where compiled OpenCL kernels are cached, and safe sharing of that cache.

Compiling a kernel takes far longer than running it, so the OpenCL drivers keep
compiled programs on disk: PoCL in ``POCL_CACHE_DIR``, NVIDIA in ``CUDA_CACHE_PATH``,
pyopencl and pytools under ``XDG_CACHE_HOME``. :func:`use_kernel_cache` points all of
them into one folder (by default one per user and node, see ``kernel_cache_dir`` in
the config) and serialises program builds between the processes that share it.

Why serialise: 16 processes compiling the same programs at once into one empty PoCL
cache made 2 to 5 of them fail with ``BUILD_PROGRAM_FAILURE`` on this project's
CI machine (PoCL reads another process' half-written cache entry); with builds
serialised by a lock, none failed (``tests/test_gpu_sharing.py``). Only builds wait
on each other: a build that hits the cache takes milliseconds, and kernels run
unlocked. The lock is an ``flock``, which the OS drops when its process ends, so a
killed job never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import functools
import os
from pathlib import Path

__all__ = ["CACHE_VARIABLES", "use_kernel_cache"]

CACHE_VARIABLES = {
    "XDG_CACHE_HOME": "xdg",  # pyopencl and pytools
    "POCL_CACHE_DIR": "pocl",  # PoCL's compiled kernels
    "CUDA_CACHE_PATH": "nvidia",  # NVIDIA driver's compiled kernels
}


def _locked(build, lock_path):
    @functools.wraps(build)
    def locked_build(self, *args, **kwargs):
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released on close, or process death
            return build(self, *args, **kwargs)

    locked_build.lock_path = lock_path
    return locked_build


def use_kernel_cache(folder):
    """Cache compiled kernels in `folder`, with builds serialised between processes.

    Call before the first kernel runs (the variables must be set before pyopencl
    creates its first context).

    Parameters
    ----------
    folder : str or os.PathLike
        Cache root; one sub-folder per cache is created.
    """
    folder = Path(folder)
    for variable, sub in CACHE_VARIABLES.items():
        (folder / sub).mkdir(parents=True, exist_ok=True)
        os.environ[variable] = str(folder / sub)

    # pyopencl's Program.build: pyclesperanto's programs (OCLProgram does not
    # override it) and the project's own (nuclei3d.segment).
    import pyopencl as cl

    build = getattr(cl.Program.build, "__wrapped__", cl.Program.build)
    cl.Program.build = _locked(build, folder / "build.lock")
