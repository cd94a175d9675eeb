"""A throwaway single-node SLURM cluster (munge, slurmctld, slurmd) for the tests.

Everything lives in one fresh folder: its own MUNGE key and socket, its own
``slurm.conf``/``gres.conf``, state, spool, pid and log files, and free TCP ports,
so nothing depends on (or touches) ``/etc/slurm``, ``/etc/munge`` or a cluster
that may already run on the machine. Every SLURM command reads the config named
by ``SLURM_CONF``: run them with :attr:`SlurmCluster.env`, which also puts
wrappers of the client commands that set it first in ``PATH`` (jobs inherit both
through ``sbatch``; see :meth:`SlurmCluster._write_wrappers` for why).

The node has the machine's CPUs (at least 4) and a fixed amount of memory (both
bookkeeping only: nothing is enforced without cgroups); with ``bind_cpus`` it
has exactly the machine's CPUs and binds each job to those it got
(``task/affinity``), as production clusters do. Partitions ``cpu``
(default) and ``gpu``, and two stand-in GPUs (``/dev/null`` and ``/dev/zero``:
SLURM only needs device files to hand out, and sets ``CUDA_VISIBLE_DEVICES`` to
the index of the one a job got). A prolog records each job's GPUs as it starts
(:meth:`SlurmCluster.jobs`), and finished jobs stay listed for ``MinJobAge``
(10 min), so ``squeue``/``scontrol`` can count and inspect every submission.

Usage::

    with SlurmCluster(tmp_path / "slurm") as cluster:
        subprocess.run(["sbatch", ...], env=cluster.env)

Needs root (or a user that may run the daemons) and the Debian packages
``slurm-wlm`` and ``munge``. The daemons are stopped by pid file on exit, also
when the body raises.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["CLIENTS", "REQUIRED", "SlurmCluster", "missing_programs"]

# Programs the cluster needs (daemons live in sbin, which a user's PATH may lack).
REQUIRED = ("munged", "slurmctld", "slurmd", "sinfo", "sbatch", "srun", "scontrol")
# Client commands wrapped so that they always read this cluster's slurm.conf.
CLIENTS = ("sbatch", "srun", "squeue", "scontrol", "sinfo", "scancel", "sacct")
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
# Memory the node announces. Only bookkeeping (no cgroups: nothing is enforced);
# fixed so that the profile's mem_mb requests fit on any CI machine.
NODE_MEMORY_MB = 64000
GPUS = ("/dev/null", "/dev/zero")
# CPUs the node announces at least (more than a 2-core CI machine has: the test
# jobs mostly wait, and GPU jobs should not keep CPU-only jobs from starting).
MIN_CPUS = 4


def missing_programs():
    """Names of the programs in REQUIRED that are not installed."""
    return [name for name in REQUIRED if not shutil.which(name, path=SEARCH_PATH)]


def _program(name):
    path = shutil.which(name, path=SEARCH_PATH)
    if path is None:
        raise RuntimeError(f"{name} not found: apt-get install slurm-wlm munge")
    return path


def _free_ports(count):
    """`count` distinct TCP ports that are free right now."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


class SlurmCluster:
    """Start munged, slurmctld and slurmd in `root`; stop them again.

    Parameters
    ----------
    root : path
        A fresh (or empty) folder for every file of the cluster.
    partitions : sequence of str
        Partition names, all on the one node; the first is the default.
    gpu_type : str, optional
        A GPU model name (``Gres=gpu:<type>:2``), for ``--gpus=<type>:1``.
    bind_cpus : bool, optional
        Announce the machine's CPUs (not at least 4) and bind each job to its
        CPUs (``TaskPlugin=task/affinity``; the tests use ``task/none``).
    """

    def __init__(
        self, root, partitions=("cpu", "gpu"), gpu_type=None, *, bind_cpus=False
    ):
        self.root = Path(root).resolve()
        self.bind_cpus = bind_cpus
        self.partitions = tuple(partitions)
        self.gpu_type = gpu_type
        self.node = socket.gethostname().split(".")[0]  # `hostname -s`
        self.conf = self.root / "slurm.conf"
        self.prolog = self.root / "prolog.sh"
        self.allocations = self.root / "gpu_allocations.tsv"
        self.log_dir = self.root / "log"
        self.pid_files = {
            "slurmd": self.root / "slurmd.pid",
            "slurmctld": self.root / "slurmctld.pid",
            "munged": self.root / "munged.pid",
        }
        # A UNIX socket path must stay under ~107 bytes: use a short folder if
        # `root` is deep.
        munge_dir = self.root / "munge"
        if len(str(munge_dir / "munge.socket")) > 100:
            munge_dir = Path(tempfile.mkdtemp(prefix="munge-"))
        self.munge_dir = munge_dir
        self.munge_socket = munge_dir / "munge.socket"
        # Client commands that always talk to this cluster (see _write_wrappers).
        self.bin_dir = self.root / "bin"
        self.env = {
            **os.environ,
            "SLURM_CONF": str(self.conf),
            "PATH": os.pathsep.join([str(self.bin_dir), SEARCH_PATH]),
        }

    # -- lifecycle --------------------------------------------------------------

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def start(self, timeout=60):
        """Write the configs, start the three daemons, wait for an idle node."""
        for folder in (self.root, self.log_dir, self.munge_dir):
            folder.mkdir(parents=True, exist_ok=True)
        for name in ("state", "spool"):
            (self.root / name).mkdir(exist_ok=True)
        self._start_munge()
        self._write_configs()
        self._write_wrappers()
        self._run(_program("slurmctld"), "-f", str(self.conf))
        self._run(_program("slurmd"), "-f", str(self.conf), "-N", self.node)
        self.wait_until_idle(timeout)

    def stop(self, timeout=20):
        """Cancel all jobs, stop the daemons by pid file (TERM, then KILL)."""
        if self.pid_files["slurmctld"].exists():
            with contextlib.suppress(Exception):
                self.command("scancel", "--user", getpass.getuser(), timeout=10)
                deadline = time.monotonic() + timeout
                while self.command("squeue", "--noheader", "--states=R,CG,S") and (
                    time.monotonic() < deadline
                ):
                    time.sleep(0.5)
        for name in ("slurmd", "slurmctld", "munged"):
            pid_file = self.pid_files[name]
            try:
                pid = int(pid_file.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _pid_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            pid_file.unlink(missing_ok=True)
        if self.munge_dir != self.root / "munge":
            shutil.rmtree(self.munge_dir, ignore_errors=True)

    # -- queries ----------------------------------------------------------------

    def command(self, *args, check=True, timeout=30):
        """Run a SLURM client command against this cluster; return its stdout."""
        process = subprocess.run(
            list(args),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and process.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args)} failed ({process.returncode}):\n"
                f"{process.stdout}{process.stderr}\n{self.log_tail()}"
            )
        return process.stdout

    def node_state(self):
        """The node's state as sinfo reports it ('idle', 'mixed', ...), or ''."""
        process = subprocess.run(
            ["sinfo", "--noheader", "--Node", "--format=%N %T"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        for line in process.stdout.splitlines():
            name, _, state = line.partition(" ")
            if name == self.node:
                return state.strip()
        return ""

    def wait_until_idle(self, timeout=60):
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            for name in ("munged", "slurmctld", "slurmd"):
                if not self._daemon_alive(name):
                    raise RuntimeError(f"{name} exited\n{self.log_tail()}")
            state = self.node_state()
            if state == "idle":
                return
            time.sleep(0.5)
        raise RuntimeError(
            f"node {self.node} not idle after {timeout} s (state {state!r})\n"
            + self.log_tail()
        )

    def jobs(self):
        """Every job slurmctld knows (finished ones too): a list of dicts.

        Keys are ``scontrol show job --details`` fields (``JobId``, ``JobName``,
        ``JobState``, ``Comment``, ``StdOut``, ``NumCPUs``, ``TresPerJob``,
        ``JOB_GRES`` ...), plus ``GpuIdx``: the indices of the GPUs the job got
        (``[]`` for none; None if it never started), as the prolog recorded them
        (``scontrol`` forgets them when a job ends).
        """
        text = self.command("scontrol", "--details", "--oneliner", "show", "jobs")
        allocations = self.gpu_allocations()
        jobs = []
        for line in text.splitlines():
            if not line.startswith("JobId="):
                continue
            fields = dict(re.findall(r"(\w+)=(\S*)", line))
            fields["GpuIdx"] = allocations.get(fields["JobId"])
            jobs.append(fields)
        return jobs

    def gpu_allocations(self):
        """{job id: indices of its GPUs} of every job that started (prolog record)."""
        if not self.allocations.exists():
            return {}
        allocations = {}
        for line in self.allocations.read_text().splitlines():
            job_id, _, gpus = line.partition("\t")
            allocations[job_id] = _indices(gpus) if gpus.strip() else []
        return allocations

    def job_environment(self, job_id):
        """The environment sbatch sent along with a batch job (kept in the state
        folder while slurmctld lists the job)."""
        for path in (self.root / "state").glob(f"hash.*/job.{job_id}/environment"):
            entries = path.read_bytes().decode(errors="replace").split("\0")
            return dict(e.split("=", 1) for e in entries if "=" in e)
        raise FileNotFoundError(f"no saved environment of job {job_id}")

    def _daemon_alive(self, name):
        try:
            pid = int(self.pid_files[name].read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return True  # not written yet
        return _pid_alive(pid)

    def log_tail(self, lines=30):
        """The last lines of the daemons' logs, for error messages."""
        parts = []
        for path in sorted(self.log_dir.glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name} ---\n" + "\n".join(tail))
        return "\n".join(parts)

    # -- internals --------------------------------------------------------------

    def _run(self, *args):
        """Start a daemon (it forks into the background and writes a pid file)."""
        process = subprocess.run(
            list(args), env=self.env, capture_output=True, text=True, timeout=60
        )
        if process.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args)} failed ({process.returncode}):\n"
                f"{process.stdout}{process.stderr}\n{self.log_tail()}"
            )

    def _start_munge(self):
        key = self.munge_dir / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self._run(
            _program("munged"),
            "--force",  # root, and a socket outside /run/munge
            f"--socket={self.munge_socket}",
            f"--key-file={key}",
            f"--pid-file={self.pid_files['munged']}",
            f"--log-file={self.log_dir / 'munged.log'}",
            f"--seed-file={self.munge_dir / 'munged.seed'}",
        )

    def _write_configs(self):
        user = getpass.getuser()
        ctld_port, slurmd_port = _free_ports(2)
        cpus = os.cpu_count() or 1
        if not self.bind_cpus:
            cpus = max(cpus, MIN_CPUS)
        root = self.root
        type_ = f" Type={self.gpu_type}" if self.gpu_type else ""
        gres = [
            "AutoDetect=off",
            *(f"NodeName={self.node} Name=gpu{type_} File={device}" for device in GPUS),
        ]
        partitions = [
            f"PartitionName={name} Nodes={self.node} MaxTime=INFINITE State=UP"
            + (" Default=YES" if i == 0 else "")
            for i, name in enumerate(self.partitions)
        ]
        conf = [
            "ClusterName=nuclei3d-test",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            f"SlurmctldPort={ctld_port}",
            f"SlurmdPort={slurmd_port}",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            f"SlurmUser={user}",
            f"SlurmdUser={user}",
            f"StateSaveLocation={root / 'state'}",
            f"SlurmdSpoolDir={root / 'spool'}",
            f"SlurmctldPidFile={self.pid_files['slurmctld']}",
            f"SlurmdPidFile={self.pid_files['slurmd']}",
            f"SlurmctldLogFile={self.log_dir / 'slurmctld.log'}",
            f"SlurmdLogFile={self.log_dir / 'slurmd.log'}",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            "ProctrackType=proctrack/linuxproc",
            f"TaskPlugin=task/{'affinity' if self.bind_cpus else 'none'}",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "MpiDefault=none",
            "MailProg=/bin/true",
            "SchedulerType=sched/backfill",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            # Keep finished jobs listed (squeue status checks, counting).
            "MinJobAge=600",
            # A job without --mem gets this much, not the whole node.
            "DefMemPerCPU=1000",
            "ReturnToService=2",
            # Record each job's GPUs when it starts (scontrol forgets them at the end).
            f"Prolog={self.prolog}",
            "PrologFlags=Alloc",
            # Take the node's CPUs/memory from this file, not from the hardware.
            "SlurmdParameters=config_overrides",
            "GresTypes=gpu",
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={cpus} "
            f"RealMemory={NODE_MEMORY_MB} "
            f"Gres=gpu:{self.gpu_type + ':' if self.gpu_type else ''}{len(GPUS)} "
            "State=UNKNOWN",
            *partitions,
        ]
        (root / "gres.conf").write_text("\n".join(gres) + "\n")
        self.prolog.write_text(
            "#!/bin/sh\n"
            "# Runs on the node as each job starts: record the GPUs SLURM gave it.\n"
            'printf "%s\\t%s\\n" "$SLURM_JOB_ID" "$SLURM_JOB_GPUS" '
            f">> '{self.allocations}'\n"
        )
        self.prolog.chmod(0o755)
        self.conf.write_text("\n".join(conf) + "\n")

    def _write_wrappers(self):
        """SLURM client commands in bin/ that set SLURM_CONF themselves.

        SLURM_CONF in the environment is not enough: before its `srun` for each
        job, snakemake-executor-plugin-slurm-jobstep (0.6.1) removes every
        SLURM_* variable but a few job ids, SLURM_CONF included, so that srun
        would look for /etc/slurm/slurm.conf (or DNS SRV records) and fail with
        "Could not establish a configuration source". Jobs keep PATH, and with
        bin/ first in it every command finds this cluster.
        """
        self.bin_dir.mkdir(exist_ok=True)
        for name in CLIENTS:
            real = shutil.which(name, path=SEARCH_PATH)
            if real is None:
                continue
            wrapper = self.bin_dir / name
            wrapper.write_text(
                f"#!/bin/sh\nexport SLURM_CONF='{self.conf}'\nexec '{real}' \"$@\"\n"
            )
            wrapper.chmod(0o755)


def _indices(text):
    """'0,2-3' -> [0, 2, 3]."""
    result = []
    for part in text.strip().split(","):
        first, _, last = part.partition("-")
        result.extend(range(int(first), int(last or first) + 1))
    return result
