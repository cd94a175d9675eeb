"""Shared fixtures: OpenCL device, tiny demo stacks, a Snakemake runner."""

import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
INTEL_ICD = "nuclei3d-intel-cpu.icd"
# Small enough for a 2-core CI machine, large enough for a few touching nuclei.
TINY_DEMO = {
    "shape": [30, 150, 150],
    "voxel_size_um": [1.0, 0.202, 0.202],
    "n_nuclei": 8,
}


def in_ci():
    """Whether this is a CI run (``CI`` set, as .ci/run sets it)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def intel_runtime():
    """Intel's CPU runtime in this environment: required in CI on x86-64 Linux."""
    from nuclei3d.probe import ENVIRONMENT_RUNTIMES

    library = Path(sys.prefix) / "lib" / ENVIRONMENT_RUNTIMES[INTEL_ICD]
    if not library.exists():
        if in_ci() and platform.machine() == "x86_64":
            pytest.fail(f"{library} missing: requirements.txt installs it")
        pytest.skip("Intel's CPU runtime is not installed here")
    return library


@pytest.fixture(scope="session")
def opencl_device():
    """pyclesperanto's current device. OpenCL is required: this fails, never skips."""
    from nuclei3d.device import select_device

    return select_device(os.environ.get("NUCLEI3D_TEST_DEVICE", ""))


def assert_same_arithmetic(actual, expected, device):
    """Our kernel's floats against pyclesperanto's, computed on `device`.

    Equal to the bit on PoCL and NVIDIA's OpenCL. Intel's CPU runtime compiles
    the two programs' multiply-adds and sums differently (contraction into fused
    multiply-adds, vectorised reductions): there within 2e-6, relative (a
    3D Gaussian blur differed by up to 8 units in the last place, 6e-7).
    """
    if device.platform.startswith("Intel(R) OpenCL"):
        np.testing.assert_allclose(actual, expected, rtol=2e-6, atol=0)
    else:
        np.testing.assert_array_equal(actual, expected)


@pytest.fixture(scope="session")
def tiny_stack():
    """A tiny demo stack (uint8) and its ground-truth labels."""
    from nuclei3d.demo import make_demo_stack

    return make_demo_stack(
        shape=tuple(TINY_DEMO["shape"]), n_nuclei=TINY_DEMO["n_nuclei"], seed=3
    )


def ball(shape, centre, radius):
    """Boolean ball on an isotropic grid."""
    grid = np.indices(shape)
    distance = sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True))
    return distance <= radius**2


def run_snakemake(workdir, *args, check=True, snakefile=REPO / "Snakefile", env=None):
    """Run the workflow in `workdir`; return the completed process."""
    process = subprocess.run(
        [*SNAKEMAKE, "-s", str(snakefile), "--cores", "2", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
    )
    if check and process.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed:\n{process.stdout}\n{process.stderr}"
            + failed_job_logs(workdir, process.stderr)
        )
    return process


def failed_job_logs(workdir, output, lines=25):
    """The last `lines` lines of each log Snakemake names for a failed job."""
    named = re.findall(r"log: (\S+) \(check log file", output)
    tails = []
    for name in dict.fromkeys(named):
        path = Path(workdir) / name
        text = path.read_text() if path.is_file() else "(missing)\n"
        tails.append(f"--- {name} ---\n" + "".join(text.splitlines(True)[-lines:]))
    return "".join(f"\n{tail}" for tail in tails)


STAGE_RULES = re.compile(
    r"^(resample|equalize|background|segment|overlay|measure|validate|ome_zarr)_"
)


def planned_jobs(workdir, *args, snakefile=REPO / "Snakefile"):
    """(rule, sample) of every job a dry run plans; sample is '' without one.

    A stage rule runs a batch (`segment_<batch>`): it counts as (stage, sample)
    for each stack whose outputs it writes.
    """
    process = run_snakemake(workdir, "--dry-run", *args, snakefile=snakefile)
    jobs = set()
    text = process.stdout + process.stderr
    for block in re.split(r"\n(?=\s*\[.*\]\n|\s*(?:local)?rule [\w.-]+:)", text):
        rule = re.search(r"^\s*(?:local)?rule ([\w.-]+):", block, re.MULTILINE)
        if not rule:
            continue
        stage = STAGE_RULES.match(rule.group(1))
        if stage:
            output = re.search(r"^\s+output: (.*)$", block, re.MULTILINE).group(1)
            for sample in set(re.findall(r"results/([^/,\s]+)/", output)):
                jobs.add((stage.group(1), sample))
            continue
        wildcards = re.search(r"wildcards: .*?(?:sample|stack)=([^,\s]+)", block)
        jobs.add((rule.group(1), wildcards.group(1) if wildcards else ""))
    return jobs


def stack_log(results, stage, sample):
    """The log of the `stage` job that ran `sample` (a job logs its stacks on its
    second line: `<n> stack(s): a, b, ...`)."""
    for log in sorted((Path(results) / "logs" / stage).glob("*.log")):
        text = log.read_text()
        listed = re.search(r"\d+ stack\(s\): (.*)$", text, re.MULTILINE)
        if listed and sample in listed.group(1).split(", "):
            return text
    raise FileNotFoundError(f"no {stage} log lists {sample} in {results}/logs")


def make_workdir(path, samples=("stack_a", "stack_b"), **overrides):
    """A run folder with the repo's config, the tiny demo and the given samples."""
    path.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["demo"] = dict(TINY_DEMO)
    for key, value in overrides.items():
        config[key] = value
    (path / "config").mkdir(exist_ok=True)
    (path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    write_sheet(path, samples)
    return path


def write_sheet(path, samples, extra_rows=()):
    rows = ["sample\timage\tground_truth"]
    rows += [
        f"{s}\tresources/demo/{s}/image.tif\tresources/demo/{s}/ground_truth.tif"
        for s in samples
    ]
    rows += list(extra_rows)
    (path / "config" / "samples.tsv").write_text("\n".join(rows) + "\n")


def edit_config(path, section, key, value):
    config_path = path / "config" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    if section is None:
        config[key] = value
    else:
        config[section][key] = value
    config_path.write_text(yaml.safe_dump(config))


def copy_workflow(destination):
    """A copy of the workflow code (to edit its library without touching the repo)."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "workflow", "scripts", "src", "envs", "profiles"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(
                source, destination / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(source, destination / name)
    return destination


def job_counts(workdir, *args):
    """Jobs per rule of a dry run, from Snakemake's "Job stats" table."""
    process = run_snakemake(workdir, "--dry-run", *args)
    table = (process.stdout + process.stderr).split("Job stats:")[1].split("\n\n")[0]
    return {
        rule: int(count)
        for rule, count in re.findall(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)
        if rule != "total"
    }
