"""What every stage script does first: log to the job's log file, pick the device."""

from __future__ import annotations

import atexit
import getpass
import logging
import os
import socket
import sys
from pathlib import Path

from .device import select_device
from .kernel_cache import use_kernel_cache

__all__ = ["node_path", "start_job"]


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


def start_job(snakemake, *, gpu=True):
    """Send this job's stderr and logging to its log file; choose its device.

    Parameters
    ----------
    snakemake : snakemake.script.Snakemake
        The object Snakemake hands to a ``script:``.
    gpu : bool, optional
        Whether the job runs OpenCL kernels; if so, set the kernel cache
        (:func:`nuclei3d.kernel_cache.use_kernel_cache` with the config's
        ``kernel_cache_dir``), then select and log the device
        (:func:`nuclei3d.device.select_device` with the config's ``device`` and
        ``gpu_lock_dir``).

    Returns
    -------
    logging.Logger
        Logger named after the rule.
    """
    sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: SIM115
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    log = logging.getLogger(snakemake.rule)
    log.info(
        "rule %s, wildcards %s, host %s, pid %d, CUDA_VISIBLE_DEVICES=%s",
        snakemake.rule,
        dict(snakemake.wildcards.items()),
        socket.gethostname(),
        os.getpid(),
        os.environ.get("CUDA_VISIBLE_DEVICES", "(unset)"),
    )
    atexit.register(log.info, "job process ends")
    if gpu:
        config = snakemake.config
        cache = node_path(config["kernel_cache_dir"])
        use_kernel_cache(cache)
        log.info("OpenCL kernel cache: %s", cache)

        select_device(config["device"], lock_dir=node_path(config["gpu_lock_dir"]))
    return log
