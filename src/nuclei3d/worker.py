"""Worker processes that run the stage jobs of one Snakemake process.

Stage jobs are threads of the Snakemake process (``nuclei3d.job``). Threads share
one interpreter lock, and pyclesperanto spends most of a stage in Python (a few
dozen kernel launches, each set up in Python), so threads alone drive the GPU
from one core. A :class:`WorkerPool` of N processes, each importing
pyclesperanto and opening the device once, runs N jobs at the same time.

A worker is ``python -m nuclei3d.worker FD``: it reads ``(function, args)``
requests from the socket FD, runs them, and sends back ``(True, result)`` or
``(False, exception)``. It exits when the socket closes, which happens when the
Snakemake process ends, however it ends; a job it is running still finishes
(outputs are written atomically). In a local run, the workflow starts them while
Snakemake plans (:meth:`WorkerPool.start`), so they import pyclesperanto meanwhile;
otherwise they start on demand, and not at all where no stage job runs (dry runs).
Their output goes to the Snakemake process' terminal; a job's messages go to its
log file.
"""

from __future__ import annotations

import os
import pickle
import queue
import socket
import subprocess
import sys
import threading
from multiprocessing.connection import Connection

__all__ = ["WorkerDied", "WorkerPool", "serve"]


class WorkerDied(RuntimeError):
    """A worker process ended while it ran a job (crash, out of memory, killed)."""


class _Worker:
    def __init__(self):
        parent, child = socket.socketpair()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "nuclei3d.worker", str(child.fileno())],
            pass_fds=[child.fileno()],
            stdin=subprocess.DEVNULL,
        )
        child.close()
        self.connection = Connection(parent.detach())

    def close(self):
        self.connection.close()


class WorkerPool:
    """Up to `size` worker processes, each running one request at a time.

    Parameters
    ----------
    size : int
        Most workers alive at once; they are started as requests need them, or
        all at once by :meth:`start`.

    Examples
    --------
    >>> pool = WorkerPool(1)
    >>> pool.run(pow, 2, 10)
    1024
    >>> pool.close()
    """

    def __init__(self, size):
        self.size = size
        self._idle = queue.SimpleQueue()
        self._alive = 0
        self._lock = threading.Lock()

    def _take(self):
        while True:
            with self._lock:
                try:
                    worker = self._idle.get_nowait()
                except queue.Empty:
                    if self._alive < self.size:
                        self._alive += 1
                        try:
                            return _Worker()
                        except BaseException:
                            self._alive -= 1
                            raise
                    worker = self._idle  # all busy: wait, outside the lock
            if worker is self._idle:
                worker = self._idle.get()
            if worker is not None:
                return worker
            # None: a worker was lost; look again, one may start in its place

    def _lost(self):
        """Forget a worker that ended; wake a request waiting for one."""
        with self._lock:
            self._alive -= 1
        self._idle.put(None)

    def _discard(self, worker):
        """Close a worker whose connection broke and forget it; its exit code."""
        worker.close()
        code = worker.process.wait()
        self._lost()
        return code

    def start(self, function, *args):
        """Start the missing workers now, each running ``function(*args)`` first.

        For the work every worker does before its first job (imports), done while
        the caller goes on: a request waits for the first worker that is ready.
        The outcome of `function` is not kept; a job that meets the same error
        reports it in its own log.
        """
        with self._lock:
            count = self.size - self._alive
            self._alive += count
        for _ in range(count):
            threading.Thread(
                target=self._start_one, args=(function, args), daemon=True
            ).start()

    def _start_one(self, function, args):
        try:
            worker = _Worker()
        except Exception:  # the next request tries again, and reports it
            self._lost()
            return
        try:
            worker.connection.send((function, args))
            worker.connection.recv()
        except (EOFError, OSError):
            self._discard(worker)
            return
        self._idle.put(worker)

    def run(self, function, *args):
        """``function(*args)`` in a worker process; its result, or its exception.

        Raises
        ------
        WorkerDied
            If the worker process ended before it answered.
        """
        worker = self._take()
        try:
            worker.connection.send((function, args))
            ok, value = worker.connection.recv()
        except (EOFError, OSError) as error:
            code = self._discard(worker)
            raise WorkerDied(
                f"the worker process (pid {worker.process.pid}) running "
                f"{getattr(function, '__name__', function)} ended with exit code "
                f"{code} before it answered"
            ) from error
        self._idle.put(worker)
        if ok:
            return value
        raise value

    def close(self):
        """End the idle workers (busy ones end once their job is done)."""
        while True:
            try:
                worker = self._idle.get_nowait()
            except queue.Empty:
                return
            if worker is None:
                continue
            worker.close()
            worker.process.wait()
            with self._lock:
                self._alive -= 1


def _picklable(error):
    try:
        pickle.dumps(error)
    except Exception:  # any exception must get back to the job
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


def serve(fd):
    """A worker's loop: answer requests on socket `fd` until it closes."""
    connection = Connection(fd)
    while True:
        try:
            function, args = connection.recv()
        except (EOFError, OSError):
            return
        try:
            answer = (True, function(*args))
        except BaseException as error:  # sent to the job, whatever it is
            answer = (False, _picklable(error))
        try:
            connection.send(answer)
        except (BrokenPipeError, OSError):
            return


if __name__ == "__main__":
    serve(int(sys.argv[1]))
    os._exit(0)  # no waiting for pyopencl's clean-up at exit
