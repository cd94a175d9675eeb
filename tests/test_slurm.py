"""The workflow through profiles/slurm on a real single-node SLURM cluster.

The module starts its own cluster (tests/slurm_cluster.py: munged, slurmctld,
slurmd, partitions `cpu` and `gpu`, two stand-in GPUs) and makes these runs on
tiny demo stacks (4 stacks, `batches: 2`: batches of 3 and 1 stacks):

- ``local``: ``--cores 2`` without SLURM, the reference;
- ``slurm``: ``--profile profiles/slurm`` as it ships: one SLURM job per batch
  runs all the batch's stages; the run-wide tables and figures, and the demo
  stacks, are local rules (no SLURM job);
- ``sweep``: the parameter sweep (``sweep`` target) through the same profile.

The SLURM runs overlap (most of their time is waiting for SLURM and for the
plugin's status checks); jobs are told apart by the run ID the plugin gives
them as job name.

PoCL stands in for the GPUs: ``POCL_DEVICES="pthread pthread"`` gives two OpenCL
CPU devices, and a job must pick the one whose index SLURM put in
``CUDA_VISIBLE_DEVICES``. Submissions are counted from SLURM itself
(``scontrol show jobs``; ``MinJobAge`` keeps finished jobs listed), and the GPU
each job got is what the cluster's prolog recorded as it started.

In CI (``CI=true``) these tests never skip; elsewhere they skip only where
slurmctld is not installed.
"""

import itertools
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from nuclei3d import io
from nuclei3d.batches import make_batches

from .conftest import REPO, in_ci, make_workdir, run_snakemake
from .slurm_cluster import SlurmCluster, missing_programs

pytestmark = pytest.mark.slurm

PROFILE = REPO / "profiles" / "slurm"
STAGES = ("resample", "equalize", "background", "segment", "overlay", "measure")
OPENCL_STAGES = STAGES[:5]  # measure runs on the CPU, in the batch's job
SAMPLES = ("stack_a", "stack_b", "stack_c", "stack_d")
BATCHES = make_batches(SAMPLES, 2)
# Only for this test cluster (a real site keeps the plugin's defaults):
SLURM_TEST_FLAGS = (
    # No accounting (slurmdbd): sacct cannot see jobs; squeue can (MinJobAge).
    "--slurm-status-command",
    "squeue",
    # No accounts exist.
    "--slurm-no-account",
    # First status check after 2 s instead of 40 s.
    "--slurm-init-seconds-before-status-checks",
    "2",
    # Keep every job's SLURM log: the tests read which stages a job ran.
    "--slurm-keep-successful-logs",
)
# The node's CPU has several OpenCL runtimes (pyopencl's PoCL, Debian's PoCL,
# Intel's), which count as one device; `device: pocl` keeps the PoCL ones, of
# which the best one's two devices stand in for the GPUs.
CONFIG = {"device": "pocl", "batches": 2}
# Two parameter sets on the one annotated stack.
SWEEP = {
    "resample": {"target_voxel_size_um": [1.0]},
    "background": {"radius_um": [5.0]},
    "segment": {"spot_sigma_um": [2.0, 3.0], "outline_sigma_um": [1.0]},
}
GPU_LINE = re.compile(
    r"OpenCL device (\d+): .*\(CUDA_VISIBLE_DEVICES=(\S+) "
    r"\(device (\d+) of (\d+) OpenCL devices\)\)"
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A fresh cluster for this module, stopped (by pid file) at its end."""
    missing = missing_programs()
    if missing:
        message = (
            f"SLURM/MUNGE programs not installed: {', '.join(missing)} "
            "(apt-get install slurm-wlm munge)"
        )
        # Skipping is allowed only outside CI, and only without slurmctld.
        if "slurmctld" in missing and not in_ci():
            pytest.skip(message)
        pytest.fail(message)
    with SlurmCluster(tmp_path_factory.mktemp("slurm")) as slurm:
        yield slurm


@pytest.fixture(scope="module")
def env(cluster):
    """Environment of every snakemake run here (sbatch exports it to the jobs)."""
    env = dict(cluster.env)  # SLURM_CONF, the cluster's client wrappers in PATH
    # Jobs run `<this python> -m snakemake`; the venv first in PATH anyway.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])
    # Two OpenCL devices standing in for the node's two GPUs (with STAND_IN_GPUS).
    env["POCL_DEVICES"] = "pthread pthread"
    env.pop("CUDA_VISIBLE_DEVICES", None)
    # workflow/rules/common.smk adds src/ (see test_jobs_get_pythonpath_to_src).
    env.pop("PYTHONPATH", None)
    return env


@dataclass
class Run:
    """One snakemake run and the SLURM jobs it submitted."""

    workdir: Path
    output: str  # what snakemake printed
    jobs: list  # SlurmCluster.jobs() entries

    @property
    def local_rules(self):
        """Rules snakemake ran itself (on a cluster it says "localrule")."""
        return set(re.findall(r"^localrule ([\w.-]+):", self.output, re.MULTILINE))


def run_on_slurm(cluster, env, workdir, *targets):
    """Run the workflow in `workdir` through profiles/slurm; collect its jobs."""
    process = run_snakemake(
        workdir,
        "--profile",
        str(PROFILE),
        *SLURM_TEST_FLAGS,
        *targets,
        check=False,
        env=env,
    )
    output = process.stdout + process.stderr
    run_id = re.search(r"SLURM run ID: (\S+)", output)
    # The plugin names every job of a run after the run's ID.
    jobs = [j for j in cluster.jobs() if run_id and j["JobName"] == run_id.group(1)]
    if process.returncode != 0:
        logs = "\n".join(
            f"--- {job['JobId']} {job['Comment']} ({job['JobState']}) ---\n"
            + slurm_log(job)[-3000:]
            for job in jobs
            if job["JobState"] != "COMPLETED"
        )
        raise AssertionError(
            f"snakemake on SLURM failed in {workdir}:\n{output[-8000:]}\n"
            f"{logs}\n{cluster.log_tail()}"
        )
    return Run(workdir, output, jobs)


def slurm_log(job):
    path = Path(job["StdOut"])
    return path.read_text(errors="replace") if path.is_file() else f"({path} missing)"


def rules_run_by(job):
    """The snakemake jobs (rule names) a SLURM job ran, from its log."""
    return set(re.findall(r"^\s*rule ([\w.-]+):$", slurm_log(job), re.MULTILINE))


@pytest.fixture(scope="module")
def runs(cluster, env, tmp_path_factory):
    """The runs; the two SLURM runs overlap (they mostly wait)."""
    root = tmp_path_factory.mktemp("runs")
    with ThreadPoolExecutor(1) as pool:
        sweep_dir = make_workdir(root / "sweep", ("stack_a",), **CONFIG, sweep=SWEEP)
        sweep = pool.submit(run_on_slurm, cluster, env, sweep_dir, "sweep")
        slurm = run_on_slurm(
            cluster, env, make_workdir(root / "slurm", SAMPLES, **CONFIG)
        )
        local = make_workdir(root / "local", SAMPLES, **CONFIG)
        process = run_snakemake(local, env=env)
        return {
            "slurm": slurm,
            "local": local,
            "local_output": process.stdout + process.stderr,
            "sweep": sweep.result(),
        }


def test_warm_processes_start_where_the_stages_run(runs):
    """The submitting Snakemake of a SLURM run starts no stage process (nor an
    OpenCL check) on its own host: its jobs run on the cluster's nodes. Each
    SLURM job starts one while its Snakemake plans, and the batch's stages, run
    by the job step's Snakemake, find it with the device open."""
    line = "warm stage process(es) start while Snakemake plans"
    assert f"nuclei3d: 2 {line}" in runs["local_output"]
    for name in ("slurm", "sweep"):
        assert line not in runs[name].output, name
    run = runs["slurm"]
    for job in run.jobs:
        assert f"nuclei3d: 1 {line}" in slurm_log(job), job
        (batch,) = {rule.rpartition("_")[2] for rule in rules_run_by(job)}
        logs = {
            stage: (run.workdir / "results/logs" / stage / f"{batch}.log").read_text()
            for stage in STAGES
        }
        assert re.search(r"stage process \d+, its job 1 \(warm\)", logs["resample"])
        chain = ("resample", "equalize", "background", "segment")
        processes = {re.search(r"stage process (\d+)", logs[s]).group(1) for s in chain}
        assert len(processes) == 1, logs


def test_outputs_equal_those_of_a_local_run(runs):
    run, local = runs["slurm"], runs["local"]
    for sample in SAMPLES:
        ours, _ = io.read_stack(run.workdir / "results" / sample / "labels.tif")
        theirs, _ = io.read_stack(local / "results" / sample / "labels.tif")
        np.testing.assert_array_equal(ours, theirs, err_msg=sample)
        assert ours.max() > 0, sample
        pd.testing.assert_frame_equal(
            pd.read_csv(run.workdir / "results" / sample / "statistics.csv"),
            pd.read_csv(local / "results" / sample / "statistics.csv"),
        )
    for table in ("label_statistics.csv", "summary.csv", "validation.csv"):
        ours = pd.read_csv(run.workdir / "results" / table)
        assert sorted(ours["sample"].unique()) == list(SAMPLES)
        pd.testing.assert_frame_equal(ours, pd.read_csv(local / "results" / table))


def test_one_slurm_job_per_batch_runs_all_its_stages(runs):
    """Two batches: two SLURM jobs, nothing else submitted. Each job ran every
    stage of its batch (and its validation); the run-wide tables, the figures
    and the demo stacks ran in Snakemake's own process."""
    run = runs["slurm"]
    assert len(run.jobs) == len(BATCHES), run.jobs
    ran = sorted(sorted(rules_run_by(job)) for job in run.jobs)
    assert ran == sorted(
        sorted(f"{stage}_{batch}" for stage in (*STAGES, "validate"))
        for batch in BATCHES
    )
    assert {
        "collect_statistics",
        "collect_validation",
        "plot_nuclei",
        "plot_volumes",
        "plot_depth",
        "demo_stack",
        "all",
    } <= run.local_rules
    for job in run.jobs:
        assert job["JobState"] == "COMPLETED", job
        assert job["ExitCode"] == "0:0", job
        assert job["Restarts"] == "0", job
        assert_gpu_job_requests(job, stages=len(STAGES) + 1)


def test_every_opencl_stage_ran_on_the_gpu_slurm_gave_its_job(runs):
    run = runs["slurm"]
    flat_index = {}
    for job in run.jobs:
        # The prolog recorded the job's GPUs as SLURM allocated them.
        assert job["GpuIdx"] is not None and len(job["GpuIdx"]) == 1, job
        gpu = str(job["GpuIdx"][0])
        (batch,) = {rule.rpartition("_")[2] for rule in rules_run_by(job)}
        for stage in STAGES:
            log = (run.workdir / "results/logs" / stage / f"{batch}.log").read_text()
            where = f"{stage}/{batch} in SLURM job {job['JobId']}:\n{log}"
            assert f"CUDA_VISIBLE_DEVICES={gpu}\n" in log, where
            device = GPU_LINE.search(log)
            assert bool(device) == (stage in OPENCL_STAGES), where
            if device:
                # the stand-in chosen == CUDA_VISIBLE_DEVICES == SLURM's GPU
                assert device.groups()[1:] == (gpu, gpu, "2"), where
                flat_index.setdefault(gpu, set()).add(device.group(1))
    # Each GPU is one OpenCL device, a different one for each GPU.
    assert all(len(indices) == 1 for indices in flat_index.values()), flat_index
    assert len(set.union(*flat_index.values())) == len(flat_index)


def test_jobs_at_the_same_time_got_different_gpus(runs):
    """Jobs with a GPU that ran at the same time (of both runs) had different ones."""
    jobs = [job for name in ("slurm", "sweep") for job in runs[name].jobs]
    for a, b in itertools.combinations(jobs, 2):
        overlap = a["StartTime"] < b["EndTime"] and b["StartTime"] < a["EndTime"]
        if overlap and a["GpuIdx"] and b["GpuIdx"]:
            assert a["GpuIdx"] != b["GpuIdx"], (a, b)


def test_jobs_get_pythonpath_to_src(runs, cluster):
    """sbatch exports what common.smk put in snakemake's environment."""
    for job in runs["slurm"].jobs:
        job_env = cluster.job_environment(job["JobId"])
        assert job_env["PYTHONPATH"].split(os.pathsep)[0] == str(REPO / "src"), job
        assert job_env["SLURM_CONF"] == str(cluster.conf)
        assert job_env["POCL_DEVICES"] == "pthread pthread"


def stage_runtime():
    """Per-stage `runtime` (min) of the stages in profiles/slurm."""
    resources = yaml.safe_load((PROFILE / "config.yaml").read_text())["set-resources"]
    return {
        resources[kind]["runtime"] for kind in ("opencl_stages", "cpu_stages")
    }.pop()


def minutes(time_limit):
    """SLURM's TimeLimit ('[d-]hh:mm:ss') in minutes."""
    days, _, clock = time_limit.rpartition("-")
    hours, mins, _ = map(int, clock.split(":"))
    return int(days or 0) * 24 * 60 + hours * 60 + mins


def assert_gpu_job_requests(job, stages):
    """One GPU, one CPU, the GPU partition, and the summed runtime of its stages."""
    assert job["Partition"] == "gpu", job
    assert job["TresPerJob"] == "gres:gpu:1", job  # sbatch --gpus=1, not 2 or 6
    assert job["JOB_GRES"] == "gpu:1", job  # what it got
    assert job["NumCPUs"] == "1", job
    assert minutes(job["TimeLimit"]) == stages * stage_runtime(), job


def test_the_sweep_runs_the_stage_rules_with_their_resources(runs):
    """The sweep's parameter sets share their upstream stages, so two segment
    jobs may run at once: each stage job of the sweep is a SLURM job of its own,
    with the resources of its stage; the ranking is a local rule."""
    run = runs["sweep"]
    ranking = pd.read_csv(run.workdir / "results/sweep/ranking.csv")
    assert len(ranking) == 2
    assert "rank_sweep" in run.local_rules
    ran = sorted(rule for job in run.jobs for rule in rules_run_by(job))
    assert ran == sorted(
        [
            "resample_sweep0",
            "equalize_sweep0",
            "background_sweep0",
            "segment_sweep0",
            "segment_sweep1",
            "validate_sweep0",
            "validate_sweep1",
        ]
    )
    for job in run.jobs:
        assert job["Partition"] == "gpu", job
        assert job["NumCPUs"] == "1", job
        (rule,) = rules_run_by(job)
        if rule.startswith("validate"):
            assert job["JOB_GRES"] == "(null)", job  # no GPU
        else:
            assert job["TresPerJob"] == "gres:gpu:1", job


def test_a_finished_run_has_nothing_left_to_do(runs, env):
    process = run_snakemake(
        runs["slurm"].workdir, "--dry-run", "--profile", str(PROFILE), env=env
    )
    assert "Nothing to be done" in process.stdout + process.stderr


def test_a_failing_job_is_retried_and_reported_with_its_log(cluster, env, tmp_path):
    """A bad stack fails its SLURM job visibly: retried once (profile
    `retries: 1`), then Snakemake's error names the job's log, which says why."""
    workdir = make_workdir(tmp_path, (), batches=1)
    nan = tmp_path / "nan.tif"
    image = np.full((12, 40, 40), 5, np.float32)
    image[1, 2, 3] = np.nan
    io.write_stack(nan, image, (1.0, 0.2, 0.2))
    (workdir / "config/samples.tsv").write_text(f"sample\timage\nnan\t{nan}\n")
    process = run_snakemake(
        workdir,
        "--profile",
        str(PROFILE),
        *SLURM_TEST_FLAGS,
        "--until",
        "resample_batch0",
        check=False,
        env=env,
    )
    output = process.stdout + process.stderr
    assert process.returncode != 0
    assert "Error in group stages" in output or "Error in rule resample" in output
    log = workdir / "results/logs/resample/batch0.log"
    assert str(log.relative_to(workdir)) in output
    assert "nan.tif: holds 1 NaN" in log.read_text()
    run_id = re.search(r"SLURM run ID: (\S+)", output).group(1)
    attempts = [j for j in cluster.jobs() if j["JobName"] == run_id]
    assert len(attempts) == 2, [j["JobState"] for j in attempts]  # first try + retry
    assert not (workdir / "results/nan").exists()
