"""Several devices on one machine, and many jobs on one device with one cache."""

import itertools
import os
import re
import subprocess
import sys
from datetime import datetime

import numpy as np
import pytest

from .conftest import REPO, edit_config, make_workdir, run_snakemake

pytestmark = pytest.mark.workflow

STAMP = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})"


def device_intervals(log_dir):
    """(device index, start, end) of every GPU job, from the job logs."""
    intervals = []
    for log in sorted(log_dir.glob("*/*.log")):
        text = log.read_text()
        device = re.search(STAMP + r" INFO nuclei3d.device: OpenCL device (\d+)", text)
        end = re.search(STAMP + r" INFO [\w.]+: job ends", text)
        if device:
            assert end, f"{log} has no end line"
            parse = lambda s: datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f")  # noqa: E731
            intervals.append(
                (int(device.group(2)), parse(device.group(1)), parse(end.group(1)))
            )
    return intervals


# Two stand-in GPUs: PoCL with ``POCL_DEVICES="pthread pthread"``. The config's
# `device: pocl` keeps PoCL's platforms; the best one's two devices remain
# (the CPU's other runtimes count as the same device).
STAND_IN_GPUS = {"device": "pocl"}
# One stack per batch: a job per stack and stage.
ALONE = {"batches": 0}


def test_concurrent_jobs_each_take_a_device_of_their_own(tmp_path):
    """Two stand-in GPUs, up to two jobs at once: every GPU job locks a device of
    its own, and no device is used by two jobs at once. (Whether two jobs hold
    their devices at the same moment depends on timing, since most of a job is
    its process' start-up; tests/test_device.py makes two claims at once.)"""
    workdir = make_workdir(tmp_path, ("s1", "s2", "s3", "s4"), **STAND_IN_GPUS, **ALONE)
    edit_config(workdir, None, "gpu_lock_dir", str(tmp_path / "locks"))
    env = dict(os.environ, POCL_DEVICES="pthread pthread")
    env.pop("CUDA_VISIBLE_DEVICES", None)
    run_snakemake(workdir, "--resources", "gpu=2", env=env)
    intervals = device_intervals(workdir / "results" / "logs")
    assert len(intervals) == 4 * 5  # five GPU stages per stack
    logs = [p.read_text() for p in (workdir / "results/logs").glob("*/*.log")]
    locked = [log for log in logs if "of 2, locked for this job)" in log]
    assert len(locked) == len(intervals)
    devices = {device for device, _, _ in intervals}
    for device in devices:
        spans = sorted((s, e) for d, s, e in intervals if d == device)
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end, f"device {device} used by two jobs at once"


def test_scheduler_choice_wins_over_locks(tmp_path):
    workdir = make_workdir(tmp_path, ("s1",), **STAND_IN_GPUS, **ALONE)
    env = dict(os.environ, POCL_DEVICES="pthread pthread", CUDA_VISIBLE_DEVICES="1")
    run_snakemake(workdir, "resample", env=env)
    log = (workdir / "results/logs/resample/s1.log").read_text()
    assert "CUDA_VISIBLE_DEVICES=1 (device 1 of 2 OpenCL devices)" in log


ONE_JOB = """
import sys
from pathlib import Path
import numpy as np
from nuclei3d.kernel_cache import build_lock, use_kernel_cache
use_kernel_cache(sys.argv[1])
from nuclei3d.device import select_device
from nuclei3d.demo import make_demo_stack
from nuclei3d.pipeline import run_pipeline
select_device("pocl", cache_dir=sys.argv[1])
image, _ = make_demo_stack(shape=(20, 100, 100), n_nuclei=4, seed=2)
with build_lock(sys.argv[1]):  # as a stage job runs its first stack
    labels = run_pipeline(image, (1.0, 0.202, 0.202))["labels"]
np.save(sys.argv[2], labels)
"""


def test_sixteen_jobs_at_once_share_one_empty_kernel_cache(tmp_path):
    """16 processes compile into one fresh cache on one device (PoCL's), each
    under the cache's build lock as a stage job's first stack: all succeed,
    agree. They share the probe's verdicts too."""
    cache = tmp_path / "shared cache"
    env = dict(os.environ, POCL_DEVICES="pthread")
    env.pop("CUDA_VISIBLE_DEVICES", None)
    jobs = [
        subprocess.Popen(
            [sys.executable, "-c", ONE_JOB, str(cache), str(tmp_path / f"{i}.npy")],
            env=env,
            cwd=REPO,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(16)
    ]
    errors = [job.communicate()[1] for job in jobs]
    assert [job.returncode for job in jobs] == [0] * 16, "\n".join(errors)
    assert any((cache / "pocl").rglob("*")), "nothing was cached"
    first = np.load(tmp_path / "0.npy")
    assert first.max() > 0
    for i in range(1, 16):
        np.testing.assert_array_equal(np.load(tmp_path / f"{i}.npy"), first)
    # The cache they wrote together serves a 17th job.
    again = subprocess.run(
        [sys.executable, "-c", ONE_JOB, str(cache), str(tmp_path / "17.npy")],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "17.npy"), first)
