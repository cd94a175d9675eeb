"""Warm stage processes: found by key, reused, watched, gone when idle."""

import json
import logging
import os
import pickle
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from nuclei3d import warm
from nuclei3d.job import Stack, StageRequest, run_stacks


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A rendezvous folder of this test's own."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return warm.rendezvous()


def wait_for(predicate, seconds=60):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_the_key_follows_what_results_depend_on():
    base = {"POCL_DEVICES": "pthread", "OMP_NUM_THREADS": "1"}
    key = warm.process_key({"device": ""}, base)
    assert key == warm.process_key({"device": ""}, {**base, "SLURM_STEP_ID": "7"})
    assert key != warm.process_key({"device": "pocl"}, base)
    assert key != warm.process_key({"device": ""}, {**base, "OMP_NUM_THREADS": "2"})
    gpu = {**base, "CUDA_VISIBLE_DEVICES": "1"}
    assert key != warm.process_key({"device": ""}, gpu)


def key_in_a_new_session(environ):
    """`process_key` as a process of another process group computes it."""
    code = (
        "import json, sys; from nuclei3d import warm; "
        "print(warm.process_key({'device': ''}, json.loads(sys.argv[1])))"
    )
    return subprocess.run(
        [sys.executable, "-c", code, json.dumps(environ)],
        start_new_session=True,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_the_key_is_the_slurm_jobs_else_the_process_groups():
    """The batch script and the job steps of a SLURM job are process groups of
    their own: inside a job, its warm processes serve all of them; elsewhere
    only the Snakemake run's process group."""
    job = {"POCL_DEVICES": "pthread", "SLURM_JOB_ID": "7"}
    assert key_in_a_new_session(job) == warm.process_key({"device": ""}, job)
    other_job = {**job, "SLURM_JOB_ID": "8"}
    assert warm.process_key({"device": ""}, other_job) != warm.process_key(
        {"device": ""}, job
    )
    alone = {"POCL_DEVICES": "pthread"}
    assert key_in_a_new_session(alone) != warm.process_key({"device": ""}, alone)


def serve_in_thread(folder, run, idle=30.0):
    """`warm.serve` in a thread, as a warm process' loop; the first job's stream."""
    ours, theirs = socket.socketpair()
    thread = threading.Thread(
        target=warm.serve, args=(theirs, "k", folder, run, idle), daemon=True
    )
    thread.start()
    stream = ours.makefile("rwb")
    assert pickle.load(stream) == "ready"
    return thread, stream


def test_an_idle_warm_process_takes_the_next_job_of_its_key(folder):
    runs = []

    def run(request, still_wanted):
        runs.append(request)
        return request == "good"

    thread, stream = serve_in_thread(folder, run, idle=3.0)
    pickle.dump("good", stream)
    stream.flush()
    assert pickle.load(stream) is True
    stream.close()
    wait_for(lambda: list(folder.glob("k-*.sock")))  # listening again
    log = logging.getLogger("test")
    assert warm.run_in_warm_process("bad", "k", log) is False
    assert runs == ["good", "bad"]
    thread.join(timeout=30)  # 3 s without a job: it stops listening, and ends
    assert not thread.is_alive()
    assert not list(folder.glob("k-*"))


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_job_fails_when_its_warm_process_ends_under_it(folder, caplog):
    def run(request, still_wanted):
        if request == "crash":
            raise SystemExit  # the process ends mid-job, as a kill would end it
        return True

    thread, stream = serve_in_thread(folder, run)
    pickle.dump("first", stream)
    stream.flush()
    assert pickle.load(stream) is True
    stream.close()
    wait_for(lambda: list(folder.glob("k-*.sock")))
    with caplog.at_level(logging.INFO):
        assert warm.run_in_warm_process("crash", "k", logging.getLogger("t")) is False
    assert "the warm stage process ended before the job did" in caplog.text
    thread.join(timeout=30)
    assert not thread.is_alive()


def test_a_stale_socket_is_removed_and_a_new_process_started(folder, tmp_path):
    """A real warm process: started for the first job, reused for the second,
    writing to each job's log; a socket left by a killed process is skipped."""
    key = warm.process_key({"device": "test"})
    stale = folder / f"{key}-1.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(stale))
    dead.close()  # the file stays; nobody listens
    logs = []
    for i in range(2):
        log_file = tmp_path / f"job{i}.log"
        log_file.write_text("")
        request = StageRequest(
            rule=f"job{i}",
            stage="no_such_stage",
            stacks=[],
            log=str(log_file),
            cwd=str(tmp_path),
            settings={"device": "test"},
        )
        assert not warm.run_in_warm_process(request, key, logging.getLogger("t"))
        logs.append(log_file.read_text())
        wait_for(lambda: list(folder.glob(f"{key}-*.sock")))
    assert not stale.exists()
    assert all("No module named 'nuclei3d.no_such_stage'" in log for log in logs)
    first = int(logs[0].split("stage process ")[1].split(",")[0])
    assert f"stage process {first}, its job 2 (warm)" in logs[1]
    assert first != os.getpid()
    os.kill(first, 9)


def test_a_job_whose_process_ended_stops_before_its_next_stack():
    ran = []
    stacks = [Stack(name, {}, "", {}, {}) for name in ("a", "b")]
    ours, theirs = socket.socketpair()
    wanted = lambda: warm.client_alive(theirs)  # noqa: E731
    assert wanted()

    def run_stage(stack, log):
        ran.append(stack.name)
        ours.close()  # the job's process ends during the first stack

    with pytest.raises(warm.ClientGone, match="b and after not run"):
        run_stacks(run_stage, stacks, logging.getLogger("t"), still_wanted=wanted)
    assert ran == ["a"]


def test_a_warm_process_that_cannot_start_says_why_in_the_jobs_log(
    folder, tmp_path, monkeypatch, caplog
):
    broken = tmp_path / "library" / "nuclei3d"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text('raise ImportError("this install is broken")\n')
    monkeypatch.setattr(warm, "PACKAGE_DIR", broken)  # what the process imports
    log_file = tmp_path / "job.log"
    with caplog.at_level(logging.INFO):
        log = logging.getLogger("t")
        assert not warm.run_in_warm_process("job", "k", log, str(log_file))
    assert "ImportError: this install is broken" in log_file.read_text()
    assert "ended before taking the job" in caplog.text


def test_a_prestarted_process_waits_while_snakemake_plans(folder):
    """It listens from the start, warms up meanwhile, and counts its idle time
    only from when the planning pipe closes."""
    warmed = threading.Event()
    read_end, write_end = os.pipe()
    planning = os.fdopen(read_end, "rb")
    thread = threading.Thread(
        target=warm.serve,
        args=(None, "k", folder, lambda request, still_wanted: True, 0.2),
        kwargs={"planning": planning, "warm_up": warmed.set},
        daemon=True,
    )
    thread.start()
    assert warmed.wait(30)
    time.sleep(1.0)  # five times its idle time: still there while planning
    assert thread.is_alive()
    assert list(folder.glob("k-*.sock"))
    os.close(write_end)
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert not list(folder.glob("k-*"))
    planning.close()


def test_a_job_that_comes_during_the_warm_up_waits_for_it(folder):
    release, runs, results = threading.Event(), [], []
    read_end, write_end = os.pipe()
    thread = threading.Thread(
        target=warm.serve,
        args=(None, "k", folder, lambda request, still_wanted: runs.append(request)),
        kwargs={
            "idle": 0.2,
            "planning": os.fdopen(read_end, "rb"),
            "warm_up": lambda: release.wait(30),
        },
        daemon=True,
    )
    thread.start()
    wait_for(lambda: list(folder.glob("k-*.sock")))
    job = threading.Thread(
        target=lambda: results.append(
            warm.run_in_warm_process("job", "k", logging.getLogger("t"))
        )
    )
    job.start()
    time.sleep(0.5)
    assert runs == [] and job.is_alive()  # connected, waiting for the warm-up
    release.set()
    job.join(timeout=30)
    assert runs == ["job"]
    os.close(write_end)
    thread.join(timeout=30)
    assert not thread.is_alive()


def test_a_prestarted_process_has_its_device_open_for_the_first_job(folder, tmp_path):
    """A real process from `prestart`, under the key of a job of this
    environment: it opened the device before the job came."""
    settings = {
        "kernel_cache_dir": str(tmp_path / "kernels"),
        "device": "",
        "gpu_lock_dir": None,
    }
    planned, started = warm.prestart(1, settings, os.environ)
    assert started == 1
    key = warm.process_key(settings)
    wait_for(lambda: list(folder.glob(f"{key}-*.sock")))
    # A second Snakemake of this run (a cluster job's step) finds it listening.
    again, started_again = warm.prestart(1, settings, os.environ)
    assert started_again == 0 and warm.idle_processes(key) == 1
    again.close()
    log_file = tmp_path / "job.log"
    log_file.write_text("")
    request = StageRequest(
        rule="job",
        stage="no_such_stage",
        stacks=[],
        log=str(log_file),
        cwd=str(tmp_path),
        settings=settings,
    )
    assert not warm.run_in_warm_process(request, key, logging.getLogger("t"))
    text = log_file.read_text()
    pid = int(text.split("stage process ")[1].split(",")[0])
    assert pid != os.getpid()
    assert f"stage process {pid}, its job 1 (warm)" in text
    assert "No module named 'nuclei3d.no_such_stage'" in text
    planned.close()
    os.kill(pid, 9)
