"""What every job does: log to its log file, pick its device, run its stacks.

Per-stack stages run through :func:`run_job`, run-wide tables and figures through
:func:`run_task`, both from the rules' ``run:`` blocks. Snakemake runs ``run:``
jobs in threads of its own process (``profiles/default`` sets
``force-use-threads``); each thread hands its job to a worker process
(:func:`use_workers`, :mod:`nuclei3d.worker`) that imported pyclesperanto and
opened the device for an earlier job, so a job costs its I/O and milliseconds of
GPU work, not 1-2 s of start-up. Where Snakemake runs a job in a process of its
own (SLURM job steps) or ``job_workers`` is 0, the job runs in the calling thread.

A job handles one stack, or a batch of them (config ``stacks_per_job``): its
``params.stacks`` holds one dict per stack (``sample`` plus that stage's
parameters), and the i-th file of each named input and output belongs to the
i-th stack. A stack that fails is logged with its file and the others of the
batch still run; the job then fails naming every failed stack.

Jobs in threads of one process share pyclesperanto's current device, so their
OpenCL work takes turns (:class:`DeviceLease`); reading and writing TIFFs runs in
parallel.

Scripts (demo data, sweep ranking) call :func:`start_job` instead.
"""

from __future__ import annotations

import atexit
import getpass
import importlib
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from . import io
from .device import (
    check_current_device_memory,
    choose_opencl_device,
    claim_free_device,
    free_pooled_memory,
    log_choice,
    new_cle_device,
    opencl_devices,
)
from .kernel_cache import use_kernel_cache
from .probe import list_devices, probe_devices
from .worker import WorkerPool

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

__all__ = [
    "DeviceLease",
    "Stack",
    "StageError",
    "finish_opencl_check",
    "node_path",
    "run_job",
    "run_stacks",
    "run_task",
    "start_job",
    "start_opencl_check",
    "stop_waiting_timers",
    "transform_stack",
    "use_workers",
    "warm_up",
]


def node_path(template):
    """Expand ``~``, ``{host}`` and ``{user}`` in a path from the config.

    Parameters
    ----------
    template : str
        E.g. ``"~/.cache/nuclei3d/kernels/{host}"``.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> node_path("/tmp/{user}").name == getpass.getuser()
    True
    """
    return Path(
        template.format(host=socket.gethostname(), user=getpass.getuser())
    ).expanduser()


def start_job(snakemake):
    """A script job's start: stderr and logging go to the job's log file.

    Parameters
    ----------
    snakemake : snakemake.script.Snakemake
        The object Snakemake hands to a ``script:``.

    Returns
    -------
    logging.Logger
        Logger named after the rule.
    """
    sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: SIM115
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format=FORMAT, force=True
    )
    log = logging.getLogger(snakemake.rule)
    log.info(
        "rule %s, wildcards %s, host %s, pid %d",
        snakemake.rule,
        dict(snakemake.wildcards.items()),
        socket.gethostname(),
        os.getpid(),
    )
    atexit.register(log.info, "job process ends")
    return log


_OPENCL = threading.Lock()  # one job at a time drives pyclesperanto in a process
_SETUP = threading.Lock()
# A job holding the OpenCL lock gives up the GIL at every blocking OpenCL call
# (Voronoi-Otsu labeling makes dozens) and must win it back from the other job
# threads each time; Python lets a thread keep the GIL for 5 ms. At 0.5 ms, 8
# concurrent jobs on 2 cores spent a third less time in segment (9.7 -> 6.6 s).
SWITCH_INTERVAL_S = 0.0005
_DEVICES = {}  # flat OpenCL device index -> pyclesperanto Device (own context)
_CACHES = set()  # kernel cache folders already set up in this process
_POOL = None  # WorkerPool of use_workers(), if any
_local = threading.local()


class StageError(RuntimeError):
    """One or more stacks of a job failed; the message names each file."""


@dataclass
class Stack:
    """One stack of a job.

    Attributes
    ----------
    name : str
        Sample name.
    inputs : dict of str to str
        The job's named inputs for this stack.
    output : str
        This stack's (first) output file or folder.
    outputs : dict of str to str
        The job's named outputs for this stack (empty where unnamed).
    params : dict
        ``sample`` and the stage's parameters for this stack.
    """

    name: str
    inputs: dict
    output: str
    outputs: dict
    params: dict


class _ThreadLog(logging.Handler):
    """Write each record to the log file of the job running in this thread."""

    def emit(self, record):
        stream = getattr(_local, "stream", None)
        if stream is not None:
            stream.write(self.format(record) + "\n")
            stream.flush()


def _library_logger():
    logger = logging.getLogger("nuclei3d")
    if not any(isinstance(h, _ThreadLog) for h in logger.handlers):
        handler = _ThreadLog()
        handler.setFormatter(logging.Formatter(FORMAT))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


@contextmanager
def _job_log(path):
    _library_logger()
    with open(path, "w", buffering=1) as stream:
        previous, _local.stream = getattr(_local, "stream", None), stream
        try:
            yield
        finally:
            _local.stream = previous


def _use_cache(config):
    """Set up the config's kernel cache in this process (once); its folder."""
    cache = node_path(config["kernel_cache_dir"])
    if cache not in _CACHES:
        use_kernel_cache(cache)
        _CACHES.add(cache)
    return cache


def warm_up(config):
    """What a process does before its first job's stage, done ahead of time.

    Sets up the kernel cache (before any OpenCL platform is opened), imports
    pyclesperanto (1.4-2.6 s on a GPU node) and lists the OpenCL devices with the
    probe's verdicts (loads the drivers; probes a new node's devices). Opens no
    device: each job picks its own (:class:`DeviceLease`).
    Then, in the background, it imports what the run-wide tables and figures
    need (pandas, matplotlib): 0.3-0.5 s that each figure job took at the end of
    a run, when nothing else is left to run.
    """
    with _SETUP:
        cache = _use_cache(config)
        import pyclesperanto_prototype  # noqa: F401

        probe_devices(cache)
    threading.Thread(target=_import_for_run_tasks, daemon=True).start()


RUN_TASK_MODULES = ("pandas", "matplotlib.figure", "matplotlib.backends.backend_agg")


def _import_for_run_tasks():
    """Import what the run-wide jobs use (:mod:`nuclei3d.plots`, the tables)."""
    for module in RUN_TASK_MODULES:
        importlib.import_module(module)


class DeviceLease:
    """The OpenCL device a job runs on, and the lock around using it.

    ``with lease:`` makes the job's device pyclesperanto's current one and holds
    the process-wide OpenCL lock; a job on a machine with several GPUs keeps the
    GPU it locked (:func:`nuclei3d.device.claim_free_device`) until it ends.

    Parameters
    ----------
    config : dict
        The workflow config (``device``, ``gpu_lock_dir``, ``kernel_cache_dir``).
    log : logging.Logger
        Where the device choice is logged.
    """

    def __init__(self, config, log):
        self.locks = []
        self.waited = self.held = 0.0  # seconds waiting for / holding the device
        with _SETUP:
            cache = _use_cache(config)
            log.info("OpenCL kernel cache: %s", cache)
            probed = list_devices(cache, log)
            devices = opencl_devices()
        lock_dir = config.get("gpu_lock_dir")
        claim = (
            partial(claim_free_device, node_path(lock_dir), held=self.locks)
            if lock_dir
            else None
        )
        self.choice = choose_opencl_device(
            probed, pattern=config.get("device", ""), claim=claim
        )
        try:
            with _SETUP:
                if self.choice.index not in _DEVICES:
                    device = new_cle_device(devices[self.choice.index])
                    _DEVICES[self.choice.index] = device
        except Exception:
            self.release()
            raise
        log_choice(self.choice)

    def __enter__(self):
        from pyclesperanto_prototype._tier0._device import _current_device

        asked = time.perf_counter()
        _OPENCL.acquire()
        self._since = time.perf_counter()
        self.waited += self._since - asked
        _current_device._instance = _DEVICES[self.choice.index]
        return self

    def __exit__(self, *exc):
        # The stage's images are dropped by now: its pooled buffers go back to the
        # driver, so that no idle process keeps GPU memory between stacks.
        free_pooled_memory(_DEVICES[self.choice.index].context)
        self.held += time.perf_counter() - self._since
        _OPENCL.release()

    def release(self):
        """Give back the GPU lock, if the job took one."""
        for handle in self.locks:
            handle.close()
        self.locks.clear()


def transform_stack(stack, device, buffers, compute):
    """Read the stack's one input, ``compute(image, voxel_um)`` on the device, write.

    Writes the result to ``stack.output`` (the first output); returns the input
    image and the result.
    """
    (path,) = stack.inputs.values()
    image, voxel_size = io.read_stack(path)
    with device:
        check_current_device_memory(path, image.shape, buffers=buffers)
        result = compute(image, voxel_size[0])
    io.write_stack(stack.output, result, voxel_size)
    return image, result


def _nth(files, i):
    """The i-th stack's file of a named input or output (one file: that file)."""
    return files if isinstance(files, str) else files[i]


def start_opencl_check(config):
    """Start checking, in a child process, that this node has a working device.

    ``python -m nuclei3d.probe --quiet`` with the config's kernel cache, where
    the probe's verdicts are kept, and ``device`` pattern; Snakemake's own
    process opens no OpenCL platform. :func:`finish_opencl_check` waits for it.

    Returns
    -------
    subprocess.Popen
    """
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nuclei3d.probe",
            "--quiet",
            "--cache-dir",
            str(node_path(config["kernel_cache_dir"])),
            "--device",
            config.get("device", ""),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish_opencl_check(check):
    """Wait for :func:`start_opencl_check`; stop the run if no device works.

    Raises
    ------
    SystemExit
        With the probe's message (what was tried, and the fixes) printed to
        stderr, and exit status 1.
    """
    _, message = check.communicate()
    if check.returncode != 0:
        print(message.strip(), file=sys.stderr)
        raise SystemExit(1)


def stop_waiting_timers():
    """Cancel the :class:`threading.Timer` threads still waiting in this process.

    Snakemake's job rate limiter (``--max-jobs-per-timespan``, by default 100 per
    second) starts a non-daemon ``threading.Timer`` after every scheduling pass, to
    look at the queue again one timespan later. When the run is over, the
    interpreter waits for the last of them before it exits: up to a second added
    to every run, about 10 % of a 64-stack run on a GPU node.
    ``workflow/rules/common.smk`` calls this from ``onsuccess`` and ``onerror``,
    when Snakemake has nothing left to schedule.
    """
    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer):
            thread.cancel()


def use_workers(count, *, warm_up_with=None):
    """Run later :func:`run_job` calls in `count` worker processes (0: in threads).

    ``workflow/rules/common.smk`` calls it with the config's ``job_workers`` (at
    most ``--cores``) in a run's Snakemake process, and with 0 where Snakemake runs
    one job per process (SLURM job steps).

    Parameters
    ----------
    count : int
        Number of worker processes; 0 runs jobs in the calling threads.
    warm_up_with : dict, optional
        A workflow config: start the workers now, each running :func:`warm_up`
        while the caller goes on (Snakemake plans the run meanwhile). Without
        it, workers start when jobs need them.
    """
    global _POOL
    if _POOL is not None and _POOL.size != count:
        _POOL.close()
        _POOL = None
    if count and _POOL is None:
        _POOL = WorkerPool(count)
    if _POOL is not None and warm_up_with is not None:
        _POOL.start(warm_up, dict(warm_up_with))


def _in_worker(function, *arguments):
    """``function(*arguments)`` in a worker process (:func:`use_workers`), else here."""
    if _POOL is None:
        return function(*arguments)
    return _POOL.run(function, *arguments)


def run_job(stage, rule, input, output, params, log, config, *, gpu=True):
    """Run `stage` on each stack of a Snakemake job, logging to the job's log.

    In a worker process (:func:`use_workers`), else in the calling thread.

    Parameters
    ----------
    stage : callable
        ``stage(stack, device, log)``: a stage module's ``run_stage``.
    rule : str
        Rule name (the logger's name).
    input, output, params, log : snakemake.io.Namedlist
        The job's, as a ``run:`` block sees them; ``params.stacks`` is a list of
        one dict per stack.
    config : dict
        The workflow config.
    gpu : bool, optional
        Whether the stage runs OpenCL kernels (then a :class:`DeviceLease` is
        taken); False passes ``None`` as the device.

    Raises
    ------
    StageError
        After all stacks ran, if any failed; its message has each stack's error.
    nuclei3d.worker.WorkerDied
        If the worker process running the job ended (crash, out of memory).
    """
    # A Namedlist iterates over its files; keys() gives the names.
    names = [n for n in input.keys() if n != "image"]  # noqa: SIM118
    stacks = []
    for i, stack_params in enumerate(params.stacks):
        outputs = {n: _nth(output[n], i) for n in output.keys()}  # noqa: SIM118
        stacks.append(
            Stack(
                name=stack_params["sample"],
                inputs={n: _nth(input[n], i) for n in names},
                output=next(iter(outputs.values())) if outputs else output[i],
                outputs=outputs,
                params=stack_params,
            )
        )
    _in_worker(run_stacks, stage, rule, stacks, log[0], dict(config), gpu, time.time())


@contextmanager
def _job_logging(rule, log_path, queued_at, what):
    """A job's log file: a first line on where it runs, a last on how long it took.

    Yields the job's logger and a dict into which the job may put ``lease``.
    """
    with _job_log(log_path):
        logger = logging.getLogger(f"nuclei3d.{rule}")
        logger.info(
            "rule %s, %s, host %s, pid %d, thread %s, waited %.3f s to start, "
            "CUDA_VISIBLE_DEVICES=%s",
            rule,
            what,
            socket.gethostname(),
            os.getpid(),
            threading.current_thread().name,
            time.time() - queued_at,
            os.environ.get("CUDA_VISIBLE_DEVICES", "(unset)"),
        )
        state = {"lease": None}
        start = time.perf_counter()
        try:
            yield logger, state
        except Exception:
            logger.error("%s", traceback.format_exc())
            raise
        finally:
            lease = state["lease"]
            logger.info(
                "job ends after %.3f s%s",
                time.perf_counter() - start,
                ""
                if lease is None
                else f" (device: waited {lease.waited:.3f} s, used {lease.held:.3f} s)",
            )
            if lease is not None:
                lease.release()


def run_stacks(stage, rule, stacks, log_path, config, gpu, queued_at):
    """The body of :func:`run_job`, in whichever process runs it."""
    if sys.getswitchinterval() > SWITCH_INTERVAL_S:
        sys.setswitchinterval(SWITCH_INTERVAL_S)
    failures = []
    with _job_logging(rule, log_path, queued_at, f"{len(stacks)} stack(s)") as (
        logger,
        state,
    ):
        if gpu:
            state["lease"] = DeviceLease(config, logger)
        for stack in stacks:
            try:
                stage(stack, state["lease"], logger)
            except Exception as error:
                logger.error(
                    "stack %s failed: %s\n%s", stack.name, error, traceback.format_exc()
                )
                failures.append(f"{stack.name}: {error}")
    if failures:
        raise StageError(
            f"rule {rule}: {len(failures)} of {len(stacks)} stack(s) "
            "failed:\n" + "\n".join(failures)
        )


def run_task(function, rule, log, **kwargs):
    """Run a run-wide job: ``function(log=logger, **kwargs)``, logged like a stage.

    Runs where the stage jobs run (a worker process of :func:`use_workers`, else
    the calling thread), so it starts no process of its own.

    Parameters
    ----------
    function : callable
        A library function taking plain paths (no Snakemake objects).
    rule : str
        Rule name.
    log : snakemake.io.Namedlist
        The job's log (first file).
    **kwargs
        Its arguments: strings, lists and dicts of paths.
    """
    _in_worker(_task, function, rule, log[0], kwargs, time.time())


def _task(function, rule, log_path, kwargs, queued_at):
    with _job_logging(rule, log_path, queued_at, "run-wide") as (logger, _):
        function(log=logger, **kwargs)
