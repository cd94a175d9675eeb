"""nuclei3d.kernel_cache: one process at a time builds into a new cache, and a
process killed while it built leaves nothing that stops the next jobs."""

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from nuclei3d.kernel_cache import build_lock, first_build

from .conftest import make_workdir, run_snakemake, stack_log

# What pyopencl's binary cache keeps of a process killed while it held the
# cache's lock: the lock file, made by pyopencl's own code. Prints the folder.
KILLED_HOLDING_PYOPENCL_CACHE_LOCK = """
import os, signal, sys
import platformdirs
from pyopencl.cache import CacheLockManager, CleanupManager
folder = os.path.join(
    platformdirs.user_cache_dir("pyopencl", "pyopencl"),
    "pyopencl-compiler-cache-v2-py" + ".".join(map(str, sys.version_info)),
)
os.makedirs(folder, exist_ok=True)
CacheLockManager(CleanupManager(), folder)
print(folder, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def runs_while_locked(folder, key):
    """Whether first_build(folder, key) gets through while another holds the lock."""
    done = threading.Event()

    def enter():
        with first_build(folder, key):
            done.set()

    with build_lock(folder):
        thread = threading.Thread(target=enter, daemon=True)
        thread.start()
        finished = done.wait(0.5)
    thread.join(5)
    return finished


def test_the_first_build_of_a_key_waits_for_the_lock_later_ones_do_not(tmp_path):
    assert not runs_while_locked(tmp_path, "segment on GPU")  # never built: waits
    with first_build(tmp_path, "segment on GPU"):
        pass
    assert runs_while_locked(tmp_path, "segment on GPU")  # built once: no wait
    assert not runs_while_locked(tmp_path, "segment on CPU")  # another key waits


def test_a_failed_first_build_is_not_marked(tmp_path):
    try:
        with first_build(tmp_path, "resample"):
            raise RuntimeError("build failed")
    except RuntimeError:
        pass
    assert not runs_while_locked(tmp_path, "resample")


def test_who_waited_while_the_first_built_goes_on_without_the_lock(tmp_path):
    inside, leave = threading.Event(), threading.Event()

    def second():
        with first_build(tmp_path, "segment"):
            inside.set()
            leave.wait(5)

    with first_build(tmp_path, "segment"):  # the first build holds the lock
        thread = threading.Thread(target=second, daemon=True)
        thread.start()
        assert not inside.wait(0.3)  # the second waits for it
    assert inside.wait(5)  # built: the second goes on ...
    locked = threading.Event()

    def third():
        with build_lock(tmp_path):
            locked.set()

    threading.Thread(target=third, daemon=True).start()
    assert locked.wait(2)  # ... without holding the lock
    leave.set()
    thread.join(5)


@pytest.mark.workflow
def test_a_job_killed_while_it_held_pyopencls_cache_lock_stops_no_later_job(
    tmp_path, intel_runtime
):
    """Intel's CPU runtime is the one CPU runtime here whose programs pyopencl
    would cache itself; with its leftover lock every build there would wait a
    minute and fail."""
    kernels = tmp_path / "kernels"
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_HOLDING_PYOPENCL_CACHE_LOCK],
        env=dict(os.environ, XDG_CACHE_HOME=str(kernels / "xdg")),
        capture_output=True,
        text=True,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    binaries = Path(killed.stdout.strip())
    assert (binaries / "lock").exists()
    workdir = make_workdir(
        tmp_path / "run", ("s1",), device="Intel", kernel_cache_dir=str(kernels)
    )
    run_snakemake(workdir, "background")
    for stage in ("equalize", "background"):
        log = stack_log(workdir / "results", stage, "s1")
        assert "on Intel(R) OpenCL" in log, log
        assert "cache lock" not in log, log
    assert [p.name for p in binaries.iterdir()] == ["lock"]  # no binary kept there
