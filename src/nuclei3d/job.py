"""What every job does: log to its log file, pick its device, run its stacks.

Every stage rule runs ``scripts/stage.py`` in a process of its own (on a laptop,
a GPU node or in a SLURM allocation alike), which calls :func:`run_stage_job`:

1. stderr and logging go to the job's log file (:func:`start_job`);
2. the stage's module, ``nuclei3d.<params.stage>``, is imported, and with it
   only what that stage uses;
3. a stage that runs OpenCL kernels (its module's ``OPENCL``) gets its kernel
   cache and device (:func:`nuclei3d.device.select_device`), and builds its
   programs on its first stack, one process at a time into a new cache
   (:func:`nuclei3d.kernel_cache.first_build`);
4. ``run_stage(stack, log)`` runs on each stack of the job's batch. A stack that
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
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from . import io

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

__all__ = [
    "Stack",
    "StageError",
    "finish_opencl_check",
    "job_stacks",
    "node_path",
    "run_stacks",
    "run_stage_job",
    "start_job",
    "start_opencl_check",
    "transform_stack",
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
    sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: SIM115
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


def run_stacks(run_stage, stacks, log, *, build_lock=None):
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

    Raises
    ------
    StageError
        After all stacks ran, if any failed; its message has each stack's error.
    """
    failures = []
    for i, stack in enumerate(stacks):
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


def run_stage_job(snakemake):
    """The body of every stage rule's script (``scripts/stage.py``).

    Parameters
    ----------
    snakemake : snakemake.script.Snakemake
        Its ``params.stage`` names the module ``nuclei3d.<stage>``; its
        ``params.stacks`` lists the stacks, as :func:`job_stacks` reads them.
    """
    log = start_job(snakemake)
    try:
        _run_stage_job(snakemake, log)
    except Exception:
        # One record with the traceback: the failure list (nuclei3d.failures)
        # reads its last line as the reason.
        log.error("%s", traceback.format_exc())
        raise SystemExit(1) from None


def _run_stage_job(snakemake, log):
    stage = importlib.import_module(f"{__package__}.{snakemake.params.stage}")
    stacks = job_stacks(snakemake.input, snakemake.output, snakemake.params.stacks)
    log.info("%d stack(s): %s", len(stacks), ", ".join(s.name for s in stacks))
    lock = None
    if getattr(stage, "OPENCL", False):
        from .device import select_device
        from .kernel_cache import first_build, use_kernel_cache

        config = snakemake.config
        cache = node_path(config["kernel_cache_dir"])
        use_kernel_cache(cache)
        log.info("OpenCL kernel cache: %s", cache)
        lock_dir = config.get("gpu_lock_dir")
        device = select_device(
            config.get("device", ""),
            lock_dir=node_path(lock_dir) if lock_dir else None,
            cache_dir=cache,
        )
        lock = first_build(
            cache, f"{stage.__name__} {device.platform} {device.name} {device.driver}"
        )
    run_stacks(stage.run_stage, stacks, log, build_lock=lock)


def transform_stack(stack, buffers, compute):
    """Read the stack's one input, ``compute(image, voxel_um)`` on the device, write.

    Writes the result to ``stack.output`` (the first output); returns the input
    image and the result.
    """
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
