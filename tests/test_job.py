"""nuclei3d.job.run_job without Snakemake: batches, failures, logs, device turns."""

import os
import threading
import time

import pytest
from snakemake.iocontainers import Namedlist

from nuclei3d.job import StageError, run_job, stop_waiting_timers

CONFIG = {"device": "", "gpu_lock_dir": "", "kernel_cache_dir": ""}


def job(tmp_path, samples, **inputs):
    """The containers a `run:` block gets, for a batch of `samples`."""
    output = Namedlist([str(tmp_path / f"{s}.txt") for s in samples])
    params = Namedlist(fromdict={"stacks": [{"sample": s} for s in samples]})
    return (
        Namedlist(fromdict=inputs),
        output,
        params,
        Namedlist([str(tmp_path / "job.log")]),
    )


def write_name(stack, device, log):
    if stack.name == "bad":
        raise ValueError(f"{stack.inputs['raw']}: not a stack")
    log.info("writing %s", stack.name)
    with open(stack.output, "w") as handle:
        handle.write(stack.inputs["raw"])


def test_every_stack_of_a_batch_runs_and_failures_are_named(tmp_path):
    samples = ["a", "bad", "c"]
    raw = [f"{s}.tif" for s in samples]
    input_, output, params, log = job(tmp_path, samples, raw=raw)
    with pytest.raises(StageError, match=r"1 of 3 stack\(s\) failed:\nbad: bad.tif"):
        run_job(write_name, "demo", input_, output, params, log, CONFIG, gpu=False)
    assert (tmp_path / "a.txt").read_text() == "a.tif"
    assert (tmp_path / "c.txt").read_text() == "c.tif"  # after the failure
    assert not (tmp_path / "bad.txt").exists()
    text = (tmp_path / "job.log").read_text()
    assert "rule demo, 3 stack(s)" in text
    assert "writing a" in text and "writing c" in text
    assert "ERROR nuclei3d.demo: stack bad failed: bad.tif: not a stack" in text
    assert "Traceback" in text
    assert "job ends after" in text


def test_a_single_file_input_belongs_to_the_one_stack(tmp_path):
    input_, output, params, log = job(tmp_path, ["a"], raw="only.tif")
    run_job(write_name, "demo", input_, output, params, log, CONFIG, gpu=False)
    assert (tmp_path / "a.txt").read_text() == "only.tif"


def test_jobs_in_threads_log_apart_and_take_turns_on_the_device(
    tmp_path, opencl_device
):
    config = dict(CONFIG, kernel_cache_dir=str(tmp_path / "cache"))
    inside, overlaps = [], []

    def stage(stack, device, log):
        log.info("stack %s", stack.name)
        for _ in range(5):
            with device:
                inside.append(stack.name)
                if len(inside) > 1:
                    overlaps.append(list(inside))
                time.sleep(0.002)
                inside.remove(stack.name)
        open(stack.output, "w").close()

    threads = []
    for name in ("one", "two", "three"):
        folder = tmp_path / name
        folder.mkdir()
        args = job(folder, [name], raw=f"{name}.tif")
        threads.append(
            threading.Thread(target=run_job, args=(stage, name, *args, config))
        )
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == []
    for name in ("one", "two", "three"):
        text = (tmp_path / name / "job.log").read_text()
        assert f"stack {name}" in text
        assert "INFO nuclei3d.device: OpenCL device" in text
        others = {"one", "two", "three"} - {name}
        assert not any(f"stack {other}" in text for other in others)


def test_jobs_run_in_worker_processes_when_asked(tmp_path):
    from nuclei3d import job as job_module

    input_, output, params, log = job(tmp_path, ["a", "bad"], raw=["a.tif", "bad.tif"])
    job_module.use_workers(1)
    try:
        with pytest.raises(StageError, match=r"bad: bad\.tif: not a stack"):
            run_job(write_name, "demo", input_, output, params, log, CONFIG, gpu=False)
    finally:
        job_module.use_workers(0)
    text = (tmp_path / "job.log").read_text()
    assert f"pid {os.getpid()}," not in text  # another process wrote it
    assert "writing a" in text
    assert (tmp_path / "a.txt").read_text() == "a.tif"


def test_stop_waiting_timers_lets_the_process_exit_at_once():
    """The rate limiter's timers (non-daemon) are cancelled, not waited for."""
    fired = []
    timer = threading.Timer(60, fired.append, args=[1])
    timer.start()
    other = threading.Thread(target=time.sleep, args=(0.2,))  # not a Timer: left
    other.start()
    stop_waiting_timers()
    timer.join(timeout=5)
    assert not timer.is_alive() and fired == []
    other.join()


def imported(name):
    import sys

    return name in sys.modules


def test_started_workers_warm_up_before_their_first_job(tmp_path):
    """Kernel cache set (before OpenCL is opened) and pyclesperanto imported."""
    from nuclei3d.job import warm_up
    from nuclei3d.worker import WorkerPool

    pool = WorkerPool(1)
    try:
        pool.start(warm_up, {"kernel_cache_dir": str(tmp_path / "cache")})
        cache = str(tmp_path / "cache" / "pocl")
        assert pool.run(os.getenv, "POCL_CACHE_DIR") == cache
        assert pool.run(imported, "pyclesperanto_prototype")
    finally:
        pool.close()


def test_started_workers_import_what_run_wide_tasks_need(tmp_path):
    """After the warm-up, pandas and matplotlib are imported in the background."""
    from nuclei3d.job import warm_up
    from nuclei3d.worker import WorkerPool

    names = ("pandas", "matplotlib.figure", "matplotlib.backends.backend_agg")
    pool = WorkerPool(1)
    try:
        pool.start(warm_up, {"kernel_cache_dir": str(tmp_path / "cache")})
        for _ in range(300):
            found = [pool.run(imported, name) for name in names]
            if all(found):
                break
            time.sleep(0.1)
    finally:
        pool.close()
    assert found == [True] * len(names)
