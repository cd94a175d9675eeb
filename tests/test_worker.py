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
