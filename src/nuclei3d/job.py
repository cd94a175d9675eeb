"""What every job does: log to its log file, pick its device, run its stacks.

Every stage rule runs ``scripts/stage.py`` in a process of its own (on a laptop,
a GPU node or in a SLURM allocation alike), which calls :func:`run_stage_job`:

1. stderr and logging go to the job's log file (:func:`start_job`);
2. the job (stage, stacks, log file) goes to a warm stage process of the same
   environment on the node (:mod:`nuclei3d.warm`), which runs
   :func:`run_request`:
3. the stage's module, ``nuclei3d.<params.stage>``, is imported, and with it
   only what that stage uses;
4. a stage that runs OpenCL kernels (its module's ``OPENCL``) gets its kernel
   cache and device (:func:`nuclei3d.device.select_device`, kept open for the
   process' next jobs), and builds its programs on its first stack, one process
   at a time into a new cache (:func:`nuclei3d.kernel_cache.first_build`);
5. ``run_stage(stack, log)`` runs on each stack of the job's batch. A stack that
   fails is logged with its file and the others still run; the job then fails
   naming every failed stack.

A job's ``params.stacks`` holds one dict per stack (``sample`` plus that stage's
parameters), and the i-th file of each named input and output belongs to the
i-th stack. Run-wide scripts (tables, figures, demo data) call :func:`start_job`.
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
import time
import traceback
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

__all__ = [
    "Stack",
    "StageError",
    "StageRequest",
    "device_settings",
    "finish_opencl_check",
    "job_stacks",
    "node_path",
    "open_device",
    "run_request",
    "run_stacks",
    "run_stage_job",
    "start_job",
    "start_opencl_check",
    "transform_stack",
    "warm_up",
]


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


@dataclass
class StageRequest:
    """One stage job, as its process hands it to a warm stage process.

    Attributes
    ----------
    rule : str
        Snakemake's rule name (the logger's name).
    stage : str
        Module of the stage, ``nuclei3d.<stage>``.
    stacks : list of Stack
    log : str
        The job's log file, absolute.
    cwd : str
        Snakemake's working directory, where relative paths start.
    settings : dict
        ``kernel_cache_dir``, ``device`` and ``gpu_lock_dir`` of the config.
    """

    rule: str
    stage: str
    stacks: list
    log: str
    cwd: str
    settings: dict


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
        Logger named after the rule. Its last line, when the process ends (also
        after an error), is ``job ends after <s> s``.
    """
    started = time.perf_counter()
    # Appending, after emptying it: a warm stage process writes to it too.
    open(snakemake.log[0], "w").close()
    sys.stderr = open(snakemake.log[0], "a", buffering=1)  # noqa: SIM115
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format=FORMAT, force=True
    )
    log = logging.getLogger(snakemake.rule)
    log.info(
        "rule %s, host %s, pid %d, CUDA_VISIBLE_DEVICES=%s",
        snakemake.rule,
        socket.gethostname(),
        os.getpid(),
        os.environ.get("CUDA_VISIBLE_DEVICES", "(unset)"),
    )
    atexit.register(
        lambda: log.info("job ends after %.3f s", time.perf_counter() - started)
    )
    return log


def _nth(files, i):
    """The i-th stack's file of a named input or output (one file: that file)."""
    return files if isinstance(files, str) else files[i]


def job_stacks(input, output, stacks):
    """The :class:`Stack` list of a job.

    Parameters
    ----------
    input, output : snakemake.io.Namedlist
        The job's; the i-th file of each named one belongs to the i-th stack
        (input ``image`` is not passed on: resample reads ``params.image``).
    stacks : list of dict
        ``params.stacks``: one dict per stack, with its ``sample``.

    Returns
    -------
    list of Stack
    """
    # A Namedlist iterates over its files; keys() gives the names.
    names = [n for n in input.keys() if n != "image"]  # noqa: SIM118
    result = []
    for i, params in enumerate(stacks):
        outputs = {n: _nth(output[n], i) for n in output.keys()}  # noqa: SIM118
        result.append(
            Stack(
                name=params["sample"],
                inputs={n: _nth(input[n], i) for n in names},
                output=next(iter(outputs.values())) if outputs else output[i],
                outputs=outputs,
                params=params,
            )
        )
    return result


def run_stacks(run_stage, stacks, log, *, build_lock=None, still_wanted=None):
    """``run_stage(stack, log)`` on every stack; the failures all at the end.

    Parameters
    ----------
    run_stage : callable
        A stage module's ``run_stage``.
    stacks : list of Stack
    log : logging.Logger
    build_lock : context manager, optional
        Entered while the first stack runs (it builds the stage's OpenCL
        programs): :func:`nuclei3d.kernel_cache.first_build`.
    still_wanted : callable, optional
        Asked before each stack; when it returns False the job's process is gone
        and no further stack runs.

    Raises
    ------
    StageError
        After all stacks ran, if any failed; its message has each stack's error.
    nuclei3d.warm.ClientGone
        If `still_wanted` returned False.
    """
    failures = []
    for i, stack in enumerate(stacks):
        if still_wanted is not None and not still_wanted():
            from .warm import ClientGone

            raise ClientGone(f"the job's process ended; {stack.name} and after not run")
        try:
            with build_lock if i == 0 and build_lock is not None else nullcontext():
                run_stage(stack, log)
        except Exception as error:
            log.error(
                "stack %s failed: %s\n%s", stack.name, error, traceback.format_exc()
            )
            failures.append(f"{stack.name}: {error}")
    if failures:
        raise StageError(
            f"{len(failures)} of {len(stacks)} stack(s) failed:\n" + "\n".join(failures)
        )


def device_settings(config):
    """:attr:`StageRequest.settings`: the config's device settings.

    Examples
    --------
    >>> device_settings({"device": "H200", "results": "results"})
    {'kernel_cache_dir': None, 'device': 'H200', 'gpu_lock_dir': None}
    """
    return {
        name: config.get(name)
        for name in ("kernel_cache_dir", "device", "gpu_lock_dir")
    }


def run_stage_job(snakemake):
    """The body of every stage rule's script (``scripts/stage.py``).

    Hands the job to a warm stage process (:mod:`nuclei3d.warm`) and exits with
    status 1 if it failed there.

    Parameters
    ----------
    snakemake : snakemake.script.Snakemake
        Its ``params.stage`` names the module ``nuclei3d.<stage>``; its
        ``params.stacks`` lists the stacks, as :func:`job_stacks` reads them.
    """
    from .warm import process_key, run_in_warm_process

    log = start_job(snakemake)
    settings = device_settings(snakemake.config)
    request = StageRequest(
        rule=snakemake.rule,
        stage=snakemake.params.stage,
        stacks=job_stacks(snakemake.input, snakemake.output, snakemake.params.stacks),
        log=os.path.abspath(snakemake.log[0]),
        cwd=os.getcwd(),
        settings=settings,
    )
    if not run_in_warm_process(request, process_key(settings), log, request.log):
        raise SystemExit(1)


@contextmanager
def _job_log(path, rule):
    """Logging, ``sys.stderr`` and file descriptor 2 append to `path` meanwhile."""
    saved_stderr, saved_fd = sys.stderr, os.dup(2)
    with open(path, "a", buffering=1) as stream:
        os.dup2(stream.fileno(), 2)
        sys.stderr = stream
        logging.basicConfig(
            stream=stream, level=logging.INFO, format=FORMAT, force=True
        )
        try:
            yield logging.getLogger(rule)
        finally:
            logging.basicConfig(stream=saved_stderr, force=True)
            sys.stderr = saved_stderr
            os.dup2(saved_fd, 2)
            os.close(saved_fd)


_JOBS_RUN = []  # rules of the jobs this process has run
_WARMED_UP = []  # True once warm_up ran in this process


def run_request(request, still_wanted=None):
    """Run one stage job in this (warm) process; whether it succeeded.

    Parameters
    ----------
    request : StageRequest
    still_wanted : callable, optional
        As for :func:`run_stacks`.

    Returns
    -------
    bool
        False after an error, which the job's log then holds as one record with
        its traceback (the failure list, :mod:`nuclei3d.failures`, reads its last
        line as the reason).
    """
    os.chdir(request.cwd)
    _JOBS_RUN.append(request.rule)
    with _job_log(request.log, request.rule) as log:
        log.info(
            "stage process %d, its job %d%s",
            os.getpid(),
            len(_JOBS_RUN),
            " (warm)" if len(_JOBS_RUN) > 1 or _WARMED_UP else "",
        )
        try:
            _run_request(request, log, still_wanted)
            return True
        except Exception:
            log.error("%s", traceback.format_exc())
            return False


def _run_request(request, log, still_wanted):
    stage = importlib.import_module(f"{__package__}.{request.stage}")
    stacks = request.stacks
    log.info("%d stack(s): %s", len(stacks), ", ".join(s.name for s in stacks))
    lock, held = None, []  # held: the device lock of this job, if any
    try:
        if getattr(stage, "OPENCL", False):
            from .kernel_cache import first_build

            cache, device = open_device(request.settings, held)
            log.info("OpenCL kernel cache: %s", cache)
            lock = first_build(
                cache,
                f"{stage.__name__} {device.platform} {device.name} {device.driver}",
            )
        run_stacks(
            stage.run_stage, stacks, log, build_lock=lock, still_wanted=still_wanted
        )
    finally:
        for handle in held:
            handle.close()


def open_device(settings, held):
    """Use the config's kernel cache and open its device in this process.

    Parameters
    ----------
    settings : dict
        :attr:`StageRequest.settings`.
    held : list
        Where the device's lock file goes, if the device is locked (closing it
        releases the device; the process keeps it open).

    Returns
    -------
    cache : pathlib.Path
        The kernel cache folder.
    device : nuclei3d.device.DeviceChoice
    """
    from .device import select_device
    from .kernel_cache import use_kernel_cache

    cache = node_path(settings["kernel_cache_dir"])
    use_kernel_cache(cache)
    lock_dir = settings.get("gpu_lock_dir")
    device = select_device(
        settings.get("device") or "",
        lock_dir=node_path(lock_dir) if lock_dir else None,
        cache_dir=cache,
        held=held,
    )
    return cache, device


def warm_up(settings):
    """Do what a warm stage process' first OpenCL job would do before its stacks.

    Imports pyclesperanto and opens the device, so that the first job a
    pre-started warm process (:func:`nuclei3d.warm.prestart`) takes runs at once.

    Parameters
    ----------
    settings : dict
        :attr:`StageRequest.settings`.
    """
    held = []
    try:
        open_device(settings, held)
    finally:
        for handle in held:
            handle.close()
    _WARMED_UP.append(True)


def transform_stack(stack, buffers, compute):
    """Read the stack's one input, ``compute(image, voxel_um)`` on the device, write.

    Writes the result to ``stack.output`` (the first output); returns the input
    image and the result.
    """
    from . import io
    from .device import check_current_device_memory

    (path,) = stack.inputs.values()
    image, voxel_size = io.read_stack(path)
    check_current_device_memory(path, image.shape, buffers=buffers)
    result = compute(image, voxel_size[0])
    io.write_stack(stack.output, result, voxel_size)
    return image, result


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
