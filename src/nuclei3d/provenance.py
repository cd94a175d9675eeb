"""A record of how a results folder was made, one file per run.

``{results}/provenance/<start>-<pid>.yaml`` is written when a run starts
(``workflow/rules/common.smk``, ``onstart``): the command, host, the project's
version (git commit where there is one), the versions of the packages the run
used, the resolved config and the parameter set (:func:`parameter_set`). When the
run ends (``onsuccess`` / ``onerror``) it gets its end time, status, the
OpenCL devices (with platform version and driver) that this run's jobs logged,
and the number of failed stacks.

Each stack's statistics carry the parameter set's id (column ``parameter_set``),
so two runs' tables can be told apart and traced back to their parameters.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import yaml

__all__ = [
    "PACKAGES",
    "finish_record",
    "package_versions",
    "parameter_set",
    "project_version",
    "start_record",
]

PACKAGES = (
    "nuclei3d",
    "snakemake",
    "snakemake-executor-plugin-slurm",
    "pyclesperanto-prototype",
    "pyopencl",
    "numpy",
    "scipy",
    "scikit-image",
    "tifffile",
    "pandas",
    "imageio",
    "matplotlib",
    "pillow",
    "intel-opencl-rt",
)
# nuclei3d.device.log_choice: "OpenCL device <i>: <name> on <platform> [<version>;
# driver <driver>] (<reason>)"
_DEVICE_LINE = re.compile(r"OpenCL device \d+: (.+? \[[^\]]*\])")


def _now():
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


def parameter_set(config, stages, code=None):
    """The parameters that shape a stack's statistics, and a short id of them.

    Parameters
    ----------
    config : dict
        The workflow config.
    stages : iterable of str
        Config sections that shape the result (e.g. resample ... segment).
    code : dict, optional
        Code fingerprints of those stages (a code change is another set).

    Returns
    -------
    dict
        ``id`` (12 hex digits), ``parameters`` and ``code``.

    Examples
    --------
    >>> a = parameter_set({"segment": {"spot_sigma_um": 3.0}}, ["segment"])
    >>> b = parameter_set({"segment": {"spot_sigma_um": 2.5}}, ["segment"])
    >>> len(a["id"]), a["id"] == b["id"]
    (12, False)
    """
    parameters = {stage: config[stage] for stage in stages}
    parameters["default_voxel_size_um"] = config.get("default_voxel_size_um")
    body = json.dumps({"parameters": parameters, "code": code or {}}, sort_keys=True)
    return {
        "id": hashlib.sha256(body.encode()).hexdigest()[:12],
        "parameters": parameters,
        "code": code or {},
    }


def project_version(basedir):
    """The project's version: the package's, and the git commit of `basedir`.

    Returns
    -------
    dict
        ``version``, ``git_commit`` (None outside a git checkout) and
        ``git_changes`` (whether tracked files differ from that commit).
    """
    try:
        version = metadata.version("nuclei3d")
    except metadata.PackageNotFoundError:
        version = None

    def git(*args):
        try:
            done = subprocess.run(
                ["git", "-C", str(basedir), *args],
                capture_output=True,
                text=True,
                timeout=30,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    changes = git("status", "--porcelain", "--untracked-files=no")
    return {
        "version": version,
        "git_commit": commit,
        "git_changes": None if commit is None else bool(changes),
    }


def package_versions(names=PACKAGES):
    """{package: version} of the packages installed here (absent ones left out)."""
    versions = {}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def start_record(path, *, config, basedir, parameters, command=None):
    """Write a run's record as it starts.

    Parameters
    ----------
    path : str or os.PathLike
        The record (YAML); its folder is created.
    config : dict
        The resolved workflow config.
    basedir : str or os.PathLike
        The workflow's folder (for the git commit).
    parameters : dict
        :func:`parameter_set` of the run.
    command : list of str, optional
        The command line (default: this process').
    """
    record = {
        "started": _now(),
        "ended": None,
        "status": "running",
        "command": " ".join(command or sys.argv),
        "host": socket.gethostname(),
        "user_pid": os.getpid(),
        "python": sys.version.split()[0],
        "project": project_version(basedir),
        "packages": package_versions(),
        "parameter_set": parameters,
        "config": json.loads(json.dumps(config, default=str)),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(record, sort_keys=False, allow_unicode=True))
    return record


def devices_used(log_dir, since):
    """{stage: {device: jobs}} from the job logs under `log_dir` written since
    `since` (a POSIX time)."""
    used = {}
    for log in sorted(Path(log_dir).glob("*/*.log")):
        if log.stat().st_mtime < since:
            continue
        found = _DEVICE_LINE.search(log.read_text(errors="replace"))
        if found:
            used.setdefault(log.parent.name, Counter())[found.group(1)] += 1
    return {stage: dict(counts) for stage, counts in sorted(used.items())}


def finish_record(path, *, status, log_dir, failed_stacks=0):
    """Complete a run's record: end time, status, devices used, failed stacks."""
    path = Path(path)
    record = yaml.safe_load(path.read_text())
    started = datetime.fromisoformat(record["started"]).timestamp()
    record.update(
        ended=_now(),
        status=status,
        failed_stacks=failed_stacks,
        opencl_devices=devices_used(log_dir, started - 1),
    )
    path.write_text(yaml.safe_dump(record, sort_keys=False, allow_unicode=True))
    return record
