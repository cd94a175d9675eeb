"""nuclei3d.worker: requests, errors and crashes cross the process boundary."""

import os

import pytest

from nuclei3d.worker import WorkerDied, WorkerPool


def fail(message):
    raise ValueError(message)


def crash():
    os._exit(3)


def slow_pid(seconds):
    import time

    time.sleep(seconds)
    return os.getpid()


@pytest.fixture
def pool():
    pool = WorkerPool(2)
    yield pool
    pool.close()


def test_results_and_exceptions_come_back(pool):
    assert pool.run(pow, 3, 4) == 81
    with pytest.raises(ValueError, match="bad stack"):
        pool.run(fail, "bad stack")
    assert pool.run(pow, 2, 3) == 8  # the worker survived the exception


def test_a_crashed_worker_is_reported_and_replaced(pool):
    with pytest.raises(WorkerDied, match="exit code 3"):
        pool.run(crash)
    assert pool.run(os.getpid) != os.getpid()


def test_workers_run_requests_side_by_side_and_are_reused(pool):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as threads:
        pids = list(threads.map(lambda _: pool.run(slow_pid, 0.3), range(4)))
    assert len(set(pids)) == 2  # two workers, each used twice
    assert os.getpid() not in pids


WARMED = []


def warm(value):
    WARMED.append(value)


def warmed():
    return WARMED


def test_started_workers_run_the_warm_up_first(pool):
    pool.start(warm, "imports done")
    pids = {pool.run(os.getpid) for _ in range(6)}
    assert len(pids) <= 2  # the started workers, no others
    assert pool.run(warmed) == ["imports done"]  # once per worker, before jobs
    pool.start(warm, "again")  # both alive: starts none
    assert pool.run(warmed) == ["imports done"]


def test_a_worker_that_dies_warming_up_is_replaced(pool):
    pool.start(crash)  # both die before any request
    assert pool.run(pow, 2, 5) == 32  # a request waits, then starts a new one
    assert pool.run(warmed) == []


def test_lost_workers_wake_waiting_requests():
    """All workers die while other requests wait: those start new ones."""
    from concurrent.futures import ThreadPoolExecutor

    pool = WorkerPool(1)
    try:
        with ThreadPoolExecutor(3) as threads:
            first = threads.submit(pool.run, crash)
            waiting = [threads.submit(pool.run, pow, 2, n) for n in (2, 3)]
            with pytest.raises(WorkerDied):
                first.result(timeout=30)
            assert sorted(f.result(timeout=30) for f in waiting) == [4, 8]
    finally:
        pool.close()
