"""The workflow through profiles/slurm on a real single-node SLURM cluster.

The module starts its own cluster (tests/slurm_cluster.py: munged, slurmctld,
slurmd, partitions `cpu` and `gpu`, two stand-in GPUs) and makes three runs on
tiny demo stacks:

- ``local``: ``--cores 2`` without SLURM, the reference (2 and 4 stacks);
- ``slurm``: ``--profile profiles/slurm``, 2 stacks, a GPU job per stack;
- ``batched``: the same with ``--group-components gpu_stages=2`` over 4 stacks,
  up to the segmentation's outputs (``--until overlay collect_statistics``; their
  demo stacks copied from the local run, so only the GPU stages and
  collect_statistics run), a GPU job per 2 stacks.

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
import shutil
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from nuclei3d import io

from .conftest import REPO, in_ci, make_workdir, run_snakemake
from .slurm_cluster import SlurmCluster, missing_programs

pytestmark = pytest.mark.slurm

PROFILE = REPO / "profiles" / "slurm"
STAGES = ("resample", "equalize", "background", "segment", "overlay", "measure")
OPENCL_STAGES = STAGES[:5]  # measure runs on the CPU, in the GPU job
SAMPLES = ("stack_a", "stack_b")
BATCHED_SAMPLES = ("stack_a", "stack_b", "stack_c", "stack_d")
BATCH_SIZE = 2
# The batched run stops at what the GPU stages feed (overlays, statistics): the
# CPU rules after them (validation, plots) are plain CPU jobs, tested by the
# first run; skipping them here saves a minute.
SEGMENTATION = ("--until", "overlay", "collect_statistics")
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
    # Keep every job's SLURM log: the tests read which stacks a GPU job ran.
    "--slurm-keep-successful-logs",
)
# The node's CPU has several OpenCL runtimes (pyopencl's PoCL, Debian's PoCL,
# Intel's), which count as one device; `device: pocl` keeps the PoCL ones, of
# which the best one's two devices stand in for the GPUs.
STAND_IN_GPUS = {"device": "pocl"}
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
    """One snakemake run, what its dry run planned, the SLURM jobs it submitted."""

    workdir: Path
    samples: tuple
    planned: dict  # {rule: number of jobs}
    local_rules: set  # rules snakemake runs itself (`all`), never submitted
    jobs: list  # SlurmCluster.jobs() entries

    @property
    def gpu_jobs(self):
        """The group jobs of the GPU stages (comment `rule_gpu_stages_...`)."""
        return [j for j in self.jobs if j["Comment"].startswith("rule_gpu_stages")]

    @property
    def other_jobs(self):
        return [job for job in self.jobs if job not in self.gpu_jobs]

    def jobs_of(self, rule):
        return [job for job in self.other_jobs if rule_of(job) == rule]

    @property
    def planned_cpu_jobs(self):
        """{rule: jobs} that must each be a SLURM job of their own."""
        return {
            rule: count
            for rule, count in self.planned.items()
            if rule not in STAGES and rule not in self.local_rules
        }


def rule_of(job):
    """The rule of an ungrouped job, from the comment the plugin gives it
    (`rule_<rule>` or `rule_<rule>_wildcards_<values>`)."""
    return job["Comment"].removeprefix("rule_").split("_wildcards_")[0]


def plan(workdir, env, *args):
    """Jobs per rule of a dry run (its "Job stats" table)."""
    process = run_snakemake(workdir, "--dry-run", *args, env=env)
    text = process.stdout + process.stderr
    table = text.split("Job stats:")[1].split("\n\n")[0]
    counts = re.findall(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)
    return {rule: int(n) for rule, n in counts if rule != "total"}


def run_on_slurm(cluster, env, workdir, samples, targets=(), options=()):
    """Run the workflow in `workdir` through profiles/slurm; collect its jobs."""
    planned = plan(workdir, env, *targets)
    process = run_snakemake(
        workdir,
        "--profile",
        str(PROFILE),
        *SLURM_TEST_FLAGS,
        *options,
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
    # Jobs snakemake ran itself (on a cluster it says "localrule").
    local_rules = set(re.findall(r"^localrule (\w+):", output, re.MULTILINE))
    return Run(workdir, samples, planned, local_rules, jobs)


def slurm_log(job):
    path = Path(job["StdOut"])
    return path.read_text(errors="replace") if path.is_file() else f"({path} missing)"


def stages_run_by(job):
    """{(rule, sample)} of the snakemake jobs a SLURM job ran, from its log."""
    blocks = re.findall(
        r"^(?:local)?rule (\w+):\n((?:[ \t]+.*\n)*)", slurm_log(job), re.M
    )
    return {
        (rule, sample.group(1))
        for rule, block in blocks
        if (sample := re.search(r"wildcards: sample=([^,\s]+)", block))
    }


def stacks_run_by(job):
    """Stacks whose stages ran in a (group) job."""
    return {sample for _, sample in stages_run_by(job)}


def run_batched(cluster, env, root, local):
    """The local run with 4 stacks, then the batched SLURM run with its demos."""
    run_snakemake(local, *SEGMENTATION, env=env)
    workdir = make_workdir(root / "batched", BATCHED_SAMPLES, **STAND_IN_GPUS)
    shutil.copytree(local / "resources", workdir / "resources")
    return run_on_slurm(
        cluster,
        env,
        workdir,
        BATCHED_SAMPLES,
        targets=SEGMENTATION,
        options=("--group-components", f"gpu_stages={BATCH_SIZE}"),
    )


@pytest.fixture(scope="module")
def runs(cluster, env, tmp_path_factory):
    """The runs; the two SLURM runs overlap (they mostly wait)."""
    root = tmp_path_factory.mktemp("runs")
    local_two = make_workdir(root / "local", SAMPLES, **STAND_IN_GPUS)
    local_four = make_workdir(root / "local_batched", BATCHED_SAMPLES, **STAND_IN_GPUS)
    with ThreadPoolExecutor(1) as pool:
        batched = pool.submit(run_batched, cluster, env, root, local_four)
        slurm_dir = make_workdir(root / "slurm", SAMPLES, **STAND_IN_GPUS)
        slurm = run_on_slurm(cluster, env, slurm_dir, SAMPLES)
        run_snakemake(local_two, env=env)
        return {
            "slurm": (slurm, local_two),
            "batched": (batched.result(), local_four),
        }


@pytest.mark.parametrize("name", ["slurm", "batched"])
def test_outputs_equal_those_of_a_local_run(runs, name):
    run, local = runs[name]
    for sample in run.samples:
        ours, _ = io.read_stack(run.workdir / "results" / sample / "labels.tif")
        theirs, _ = io.read_stack(local / "results" / sample / "labels.tif")
        np.testing.assert_array_equal(ours, theirs, err_msg=sample)
        assert ours.max() > 0, sample
        pd.testing.assert_frame_equal(
            pd.read_csv(run.workdir / "results" / sample / "statistics.csv"),
            pd.read_csv(local / "results" / sample / "statistics.csv"),
        )
    for table in ("label_statistics.csv", "summary.csv"):
        ours = pd.read_csv(run.workdir / "results" / table)
        assert sorted(ours["sample"].unique()) == list(run.samples)
        pd.testing.assert_frame_equal(ours, pd.read_csv(local / "results" / table))


@pytest.mark.parametrize("name", ["slurm", "batched"])
def test_every_gpu_stage_ran_on_the_gpu_slurm_gave_its_job(runs, name):
    run, _ = runs[name]
    seen, flat_index = set(), {}
    for job in run.gpu_jobs:
        # The prolog recorded the job's GPUs as SLURM allocated them.
        assert job["GpuIdx"] is not None and len(job["GpuIdx"]) == 1, job
        gpu = str(job["GpuIdx"][0])
        for sample in stacks_run_by(job):
            seen.add(sample)
            for stage in STAGES:
                log_file = run.workdir / "results/logs" / stage / f"{sample}.log"
                log = log_file.read_text()
                where = f"{stage}/{sample} in SLURM job {job['JobId']}:\n{log}"
                assert f"CUDA_VISIBLE_DEVICES={gpu}\n" in log, where
                device = GPU_LINE.search(log)
                assert device or stage not in OPENCL_STAGES, where
                if device:
                    # the stand-in chosen == CUDA_VISIBLE_DEVICES == SLURM's GPU
                    assert device.groups()[1:] == (gpu, gpu, "2"), where
                    flat_index.setdefault(gpu, set()).add(device.group(1))
    assert seen == set(run.samples)
    # Each GPU is one OpenCL device, a different one for each GPU.
    assert all(len(indices) == 1 for indices in flat_index.values()), flat_index
    assert len(set.union(*flat_index.values())) == len(flat_index)


def test_gpu_jobs_at_the_same_time_got_both_gpus(runs):
    """Concurrent GPU jobs (of both runs) got different GPUs: both were used."""
    jobs = [job for run, _ in runs.values() for job in run.gpu_jobs]
    assert {gpu for job in jobs for gpu in job["GpuIdx"]} == {0, 1}
    for a, b in itertools.combinations(jobs, 2):
        if a["StartTime"] < b["EndTime"] and b["StartTime"] < a["EndTime"]:
            assert a["GpuIdx"] != b["GpuIdx"], (a, b)


def test_jobs_get_pythonpath_to_src(runs, cluster):
    """sbatch exports what common.smk put in snakemake's environment."""
    run, _ = runs["slurm"]
    for job in run.jobs:
        job_env = cluster.job_environment(job["JobId"])
        assert job_env["PYTHONPATH"].split(os.pathsep)[0] == str(REPO / "src"), job
        assert job_env["SLURM_CONF"] == str(cluster.conf)
        assert job_env["POCL_DEVICES"] == "pthread pthread"


def stage_runtime():
    """Per-stage `runtime` (min) of the GPU stages in profiles/slurm."""
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    return {profile["set-resources"][stage]["runtime"] for stage in STAGES}.pop()


def minutes(time_limit):
    """SLURM's TimeLimit ('[d-]hh:mm:ss') in minutes."""
    days, _, clock = time_limit.rpartition("-")
    hours, mins, _ = map(int, clock.split(":"))
    return int(days or 0) * 24 * 60 + hours * 60 + mins


def assert_all_completed_first_time(run):
    for job in run.jobs:
        assert job["JobState"] == "COMPLETED", job
        assert job["ExitCode"] == "0:0", job
        assert job["Restarts"] == "0", job


def assert_gpu_job_requests(job, stacks):
    """One GPU, one CPU, and the summed runtime of its stages."""
    assert job["Partition"] == "gpu", job
    assert job["TresPerJob"] == "gres:gpu:1", job  # sbatch --gpus=1, not 2 or 6
    assert job["JOB_GRES"] == "gpu:1", job  # what it got
    assert job["NumCPUs"] == "1", job
    assert minutes(job["TimeLimit"]) == stacks * len(STAGES) * stage_runtime(), job


def test_one_slurm_job_per_stack_runs_its_six_gpu_stages(runs):
    run, _ = runs["slurm"]
    assert_all_completed_first_time(run)
    # One GPU job per stack runs all six stages; every other job of the plan is
    # a SLURM job of its own (CPU partition, no GPU) except what snakemake runs
    # itself (`all`). At the time of writing, for 2 stacks: 2 demo_stack +
    # 2 GPU jobs + 2 validate + collect_statistics + collect_validation +
    # 3 plot rules = 11 submissions (instead of 2 + 12 + 7).
    cpu = run.planned_cpu_jobs
    assert cpu["demo_stack"] == len(SAMPLES) and cpu["collect_statistics"] == 1
    assert "all" in run.local_rules
    assert len(run.gpu_jobs) == len(SAMPLES)
    assert Counter(rule_of(job) for job in run.other_jobs) == Counter(cpu)
    assert len(run.jobs) == len(SAMPLES) + sum(cpu.values()), run.jobs
    for job in run.gpu_jobs:
        (sample,) = stacks_run_by(job)
        assert stages_run_by(job) == {(stage, sample) for stage in STAGES}
        assert_gpu_job_requests(job, stacks=1)
    for job in run.other_jobs:
        assert job["Partition"] == "cpu", job
        assert job["JOB_GRES"] == "(null)", job  # no GPU
        assert job["GpuIdx"] == [], job
    # Each stage still ran as a snakemake job of its own, with its own log.
    for sample in SAMPLES:
        for stage in STAGES:
            log = (run.workdir / f"results/logs/{stage}/{sample}.log").read_text()
            assert "job ends after" in log, (stage, sample)


def test_group_components_batch_stacks_into_one_gpu_job(runs):
    run, _ = runs["batched"]
    assert_all_completed_first_time(run)
    batches = len(BATCHED_SAMPLES) // BATCH_SIZE
    # Demo stacks copied in, so: 2 GPU jobs of 2 stacks each + collect_statistics.
    assert run.planned_cpu_jobs == {"collect_statistics": 1}
    assert len(run.jobs) == batches + 1, run.jobs
    assert len(run.jobs_of("collect_statistics")) == 1
    assert len(run.gpu_jobs) == batches
    stacks = [stacks_run_by(job) for job in run.gpu_jobs]
    assert sorted(len(s) for s in stacks) == [BATCH_SIZE] * batches
    assert set().union(*stacks) == set(BATCHED_SAMPLES)
    for job, samples in zip(run.gpu_jobs, stacks, strict=True):
        assert stages_run_by(job) == {(t, s) for t in STAGES for s in samples}
        assert_gpu_job_requests(job, stacks=BATCH_SIZE)


def test_a_finished_run_has_nothing_left_to_do(runs, env):
    run, _ = runs["slurm"]
    process = run_snakemake(
        run.workdir, "--dry-run", "--profile", str(PROFILE), env=env
    )
    assert "Nothing to be done" in process.stdout + process.stderr


def test_a_failing_job_is_retried_and_reported_with_its_log(cluster, env, tmp_path):
    """A broken stack fails its SLURM job visibly: retried once (profile
    `retries: 1`), then Snakemake's error names the job's log, which says why."""
    workdir = make_workdir(tmp_path, ())
    broken = tmp_path / "broken.tif"
    broken.write_text("not an image\n")
    (workdir / "config/samples.tsv").write_text(f"sample\timage\nbroken\t{broken}\n")
    process = run_snakemake(
        workdir,
        "--profile",
        str(PROFILE),
        *SLURM_TEST_FLAGS,
        "--until",
        "resample",
        check=False,
        env=env,
    )
    output = process.stdout + process.stderr
    assert process.returncode != 0
    assert "Error in rule resample" in output or "Error in group gpu_stages" in output
    log = workdir / "results/logs/resample/broken.log"
    assert str(log.relative_to(workdir)) in output
    assert "broken.tif: not a readable TIFF stack" in log.read_text()
    run_id = re.search(r"SLURM run ID: (\S+)", output).group(1)
    attempts = [j for j in cluster.jobs() if j["JobName"] == run_id]
    assert len(attempts) == 2, [j["JobState"] for j in attempts]  # first try + retry
    assert not (workdir / "results/broken").exists()
