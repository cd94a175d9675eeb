"""What every stage script does first: log to the job's log file, pick the device."""

from __future__ import annotations

import logging
import os
import socket
import sys

__all__ = ["start_job"]


def start_job(snakemake, *, gpu=True):
    """Send this job's stderr and logging to its log file; choose its device.

    Parameters
    ----------
    snakemake : snakemake.script.Snakemake
        The object Snakemake hands to a ``script:``.
    gpu : bool, optional
        Whether the job runs OpenCL kernels; if so, select and log the device
        (:func:`nuclei3d.device.select_device` with the config's ``device``).

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
    if gpu:
        from .device import select_device

        select_device(snakemake.config.get("device", ""))
    return log
