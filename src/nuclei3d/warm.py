"""Warm stage processes: a node's stage jobs share processes that stay open.

A stage job's process (``scripts/stage.py``, started by Snakemake in the rule's
software environment) does not run the stage itself. It hands the job to a warm
process on the same node that was started from the same interpreter and
environment, has imported pyclesperanto and opened its OpenCL device for an
earlier job, and waits for the answer. Where no warm process is free, the job
starts one with its own interpreter and environment variables. So the six
stages of a batch pay Python's imports and the opening of a device once, not
six times; a run keeps about as many warm processes as it runs jobs at once.
A run starts them while Snakemake plans (:func:`prestart`), so that even a
batch's first stage finds one that has opened its device: a local run, and each
job of a cluster run on its node.

Finding a free warm process: an idle warm process listens on the Unix socket
``<tmp>/nuclei3d-<uid>-<host>/<key>-<pid>.sock``, where ``<key>``
(:func:`process_key`) fingerprints what its results depend on: interpreter,
library code, mount namespace (a container instance), the OpenCL, CUDA, Python
and thread variables of the environment, the config's device settings, and the
run it belongs to (:func:`run_identity`): the SLURM job it runs in, else the
process group of the Snakemake run. Only a job with the same key uses it, so
warm processes serve one run (or one SLURM job). A warm process that
takes a job removes its socket file first, and listens again when the job is
done; after :data:`IDLE_SECONDS` without a job it exits.

Each side watches the other: when the job's process ends (Snakemake cancelled
or killed it), the warm process stops before the job's next stack; when the warm
process ends (killed, crashed), the job fails and its log says so. A warm
process stays in Snakemake's process group, so interrupting or killing the run's
process group ends it too (SLURM ends a job's processes with the job), and no
process of another run writes to this run's files.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import pickle
import select
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from .fingerprint import code_fingerprint

__all__ = [
    "IDLE_SECONDS",
    "ClientGone",
    "client_alive",
    "idle_processes",
    "prestart",
    "process_key",
    "rendezvous",
    "run_identity",
    "run_in_warm_process",
    "serve",
]

IDLE_SECONDS = 10.0
# Environment variables that change what a process computes or where it runs.
KEY_PREFIXES = ("CUDA_", "POCL_", "OCL_", "CL_", "PYOPENCL_", "PYTHON", "LD_")
KEY_SUFFIXES = ("_NUM_THREADS", "_VISIBLE_DEVICES")
PACKAGE_DIR = Path(__file__).resolve().parent


class ClientGone(RuntimeError):
    """The job's process ended while its warm process was running the job."""


def rendezvous():
    """The folder of idle warm processes' sockets: ``<tmp>/nuclei3d-<uid>-<host>``.

    The host (its short name) keeps nodes apart where ``<tmp>`` is shared.
    """
    host = socket.gethostname().split(".")[0]
    folder = Path(tempfile.gettempdir()) / f"nuclei3d-{os.getuid()}-{host}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def run_identity(environ=None):
    """The run a warm process belongs to: its SLURM job, else its process group.

    Inside a SLURM job the batch script and each ``srun`` step are process
    groups of their own, but all belong to the job, which SLURM ends as a whole.

    Examples
    --------
    >>> run_identity({"SLURM_JOB_ID": "42"})
    'slurm job 42'
    >>> run_identity({}) == f"process group {os.getpgrp()}"
    True
    """
    environ = os.environ if environ is None else environ
    job = environ.get("SLURM_JOB_ID")
    return f"slurm job {job}" if job else f"process group {os.getpgrp()}"


def process_key(settings, environ=None):
    """Which warm processes may run a job: 16 hex digits.

    Parameters
    ----------
    settings : dict
        The config's settings that a process keeps once applied (its device and
        kernel cache).
    environ : mapping, optional
        Environment variables; ``os.environ`` by default.

    Returns
    -------
    str

    Examples
    --------
    >>> a = process_key({"device": ""}, {"POCL_DEVICES": "pthread"})
    >>> a == process_key({"device": ""}, {"POCL_DEVICES": "pthread", "HOME": "/x"})
    True
    >>> a == process_key({"device": ""}, {"POCL_DEVICES": "pthread pthread"})
    False
    """
    environ = os.environ if environ is None else environ
    digest = hashlib.sha256()
    described = (
        run_identity(environ),
        sys.executable,
        sys.prefix,
        sys.version,
        sorted(settings.items()),
    )
    for part in described:
        digest.update(f"{part}\0".encode())
    for name in sorted(environ):
        if name.startswith(KEY_PREFIXES) or name.endswith(KEY_SUFFIXES):
            digest.update(f"{name}={environ[name]}\0".encode())
    with contextlib.suppress(OSError):  # Linux: a container instance's own
        digest.update(str(os.stat("/proc/self/ns/mnt").st_ino).encode())
    modules = sorted(path.stem for path in PACKAGE_DIR.glob("*.py"))
    digest.update(code_fingerprint(*modules).encode())  # with their kernels
    return digest.hexdigest()[:16]


def _send(stream, message):
    pickle.dump(message, stream)
    stream.flush()


def _claim(path, timeout=60.0):
    """Connect to an idle warm process' socket; its stream, or None if taken.

    A pre-started process answers once it has opened its device; `timeout`
    bounds that wait.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except ConnectionRefusedError:
        path.unlink(missing_ok=True)  # its process is gone
        sock.close()
        return None
    except OSError:
        sock.close()
        return None
    stream = sock.makefile("rwb")
    try:
        pickle.load(stream)  # "ready"; another job was faster if this fails
    except (OSError, EOFError, pickle.UnpicklingError):
        stream.close()
        sock.close()
        return None
    sock.settimeout(None)
    return stream


def _pid_of(socket_path):
    """The pid of the warm process listening on ``<key>-<pid>.sock``."""
    return int(socket_path.stem.rsplit("-", 1)[1])


def idle_processes(key):
    """How many warm processes of `key` listen for a job now (pre-started ones too)."""
    alive = 0
    for path in rendezvous().glob(f"{key}-*.sock"):
        with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
            os.kill(_pid_of(path), 0)
            alive += 1
    return alive


def prestart(count, settings, environ):
    """Have `count` warm processes ready for the stage jobs Snakemake is planning.

    Starts as many as the jobs' key (:func:`process_key` of `settings` and
    `environ`, from this process) lacks idle ones. Each listens for a job under
    that key, imports pyclesperanto and opens the device
    (:func:`nuclei3d.job.warm_up`) meanwhile, and then waits for its first job
    while the returned pipe is open and :data:`IDLE_SECONDS` after that, as any
    idle warm process does. What they write goes nowhere: where one fails, a job
    starts a warm process of its own, whose error its log shows.

    Parameters
    ----------
    count : int
    settings : dict
        As for :func:`process_key`.
    environ : mapping
        The environment of a stage job.

    Returns
    -------
    pipe : file object
        Close it once the jobs start (it closes when this process ends).
    started : int
        How many it started.
    """
    key, folder = process_key(settings, environ), rendezvous()
    started = max(count - idle_processes(key), 0)
    planning, planned = os.pipe()
    for _ in range(started):
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                __name__,
                "--prestarted",
                str(planning),
                key,
                str(folder),
                json.dumps(settings),
            ],
            pass_fds=[planning],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=_warm_environ(environ),
        )
    os.close(planning)
    return os.fdopen(planned, "wb"), started


def _warm_environ(environ):
    """A warm process' environment: `environ`, the library first on PYTHONPATH."""
    environ = dict(environ)
    environ["PYTHONPATH"] = first_on_path(
        str(PACKAGE_DIR.parent), environ.get("PYTHONPATH")
    )
    return environ


def first_on_path(folder, path):
    """`path` (a PYTHONPATH, may be None) with `folder` first, and only there.

    Examples
    --------
    >>> first_on_path("/w/src", "/w/src:/opt/lib:/w/src")
    '/w/src:/opt/lib'
    >>> first_on_path("/w/src", None)
    '/w/src'
    """
    rest = [entry for entry in (path or "").split(os.pathsep) if entry != folder]
    return os.pathsep.join([folder, *filter(None, rest)])


def _start(key, folder, errors):
    """Start a warm process; the stream of its first job.

    What the process writes before it takes the job (an import error) goes to
    the file `errors`.
    """
    ours, theirs = socket.socketpair()
    with open(errors or os.devnull, "a") as error_file:
        subprocess.Popen(
            [sys.executable, "-m", __name__, str(theirs.fileno()), key, str(folder)],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=error_file,
            env=_warm_environ(os.environ),
        )
    theirs.close()
    return ours.makefile("rwb")


def run_in_warm_process(request, key, log, errors=None):
    """Run a job in a free warm process (started if there is none); its result.

    Parameters
    ----------
    request : object
        Picklable; the warm process calls ``nuclei3d.job.run_request(request,
        still_wanted)`` with it.
    key : str
        :func:`process_key` of the job.
    log : logging.Logger
        The job's logger.
    errors : str, optional
        File for what a warm process started for this job writes before it
        takes the job (the job's log); by default nowhere.

    Returns
    -------
    bool
        Whether the job succeeded (the warm process logged any error).
    """
    folder = rendezvous()
    stream = None
    for path in sorted(folder.glob(f"{key}-*.sock")):
        stream = _claim(path)
        if stream is not None:
            log.info("warm stage process %s runs this job", _pid_of(path))
            break
    else:
        log.info("no free warm stage process: starting one")
        stream = _start(key, folder, errors)
        try:
            pickle.load(stream)  # "ready"
        except (OSError, EOFError):
            stream.close()
            log.error("the warm stage process it started ended before taking the job")
            return False
    with stream:
        _send(stream, request)
        try:
            return pickle.load(stream)
        except (OSError, EOFError):
            log.error("the warm stage process ended before the job did (killed?)")
            return False


def client_alive(sock):
    """Whether the job's process at the other end of `sock` is still there."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return True
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except OSError:
        return False


def _next_job(key, folder, idle, *, planning=None, meanwhile=None):
    """Listen as an idle warm process; the socket of the next job, or None.

    `meanwhile` is called once the socket listens: a job that connects in the
    meantime waits for it. The `idle` seconds count from when the pipe
    `planning` closes, if given.
    """
    path = folder / f"{key}-{os.getpid()}.sock"
    bound = path.with_suffix(".new")
    bound.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with listener:
        listener.bind(str(bound))
        listener.listen(4)
        bound.rename(path)  # jobs see the socket only once it accepts
        try:
            if meanwhile is not None:
                meanwhile()
            if planning is not None:
                select.select([listener, planning], [], [])
            readable, _, _ = select.select([listener], [], [], idle)
        finally:
            path.unlink(missing_ok=True)
        return listener.accept()[0] if readable else None


def serve(sock, key, folder, run, idle=IDLE_SECONDS, *, planning=None, warm_up=None):
    """The warm process: run the jobs sent to it until `idle` seconds pass idle.

    Parameters
    ----------
    sock : socket.socket or None
        The first job's connection; None for a pre-started process
        (:func:`prestart`), which listens for its first job.
    key : str
        Its :func:`process_key`, under which it listens for more.
    folder : pathlib.Path
        :func:`rendezvous`.
    run : callable
        ``run(request, still_wanted)``, True if the job succeeded
        (:func:`nuclei3d.job.run_request`).
    idle : float, optional
        Seconds to wait for a job before exiting.
    planning : file object, optional
        A pre-started process' pipe from Snakemake: while it is open, the first
        job may still come whatever the time.
    warm_up : callable, optional
        Run once the pre-started process listens for its first job
        (:func:`nuclei3d.job.warm_up`); that job waits for it.
    """
    if sock is None:
        sock = _next_job(key, folder, idle, planning=planning, meanwhile=warm_up)
    while sock is not None:
        with sock, sock.makefile("rwb") as stream:
            try:
                _send(stream, "ready")
                request = pickle.load(stream)
            except (OSError, EOFError):
                request = None
            if request is not None:
                succeeded = run(request, functools.partial(client_alive, sock))
                with contextlib.suppress(OSError):  # the job's process is gone
                    _send(stream, succeeded)
        sock = _next_job(key, folder, idle)


if __name__ == "__main__":
    # Its errors reach the first job's log (a pre-started process': nowhere).
    from nuclei3d.job import run_request, warm_up

    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # the jobs' logs, job by job
    if sys.argv[1] == "--prestarted":
        planning, key, folder, settings = sys.argv[2:6]
        serve(
            None,
            key,
            Path(folder),
            run_request,
            planning=os.fdopen(int(planning), "rb"),
            warm_up=functools.partial(warm_up, json.loads(settings)),
        )
    else:
        first_job, key, folder = sys.argv[1:4]
        serve(socket.socket(fileno=int(first_job)), key, Path(folder), run_request)
