"""Smoke test of benchmarks/benchmark.py on two tiny stacks: it finishes and writes
every section of its JSON. Times are only checked to be positive numbers: CI
machines are too noisy for timed assertions."""

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import tifffile

from .conftest import REPO
from .test_workflow import STAGES

pytestmark = pytest.mark.workflow

SECTIONS = (
    "machine",
    "settings",
    "generation",
    "seed",
    "library",
    "workflow",
    "floor",
    "floor_labels",
    "skimage",
    "ratios",
    "dry_run",
    "large",
    "targets",
)
# Small enough for well under a minute on a 2-core CPU machine with PoCL. Only the
# seed gets a cold start (an empty kernel cache: ~20 s of PoCL compilation); the
# library shares the seed's filled cache.
ARGS = (
    "--stacks",
    "2",
    "--shape",
    "30",
    "150",
    "150",
    "--processes",
    "2",
    "--batches",
    "1",
    "--dry-run-scale",
    "20",
    "--cold",
    "seed",
    "--large",
    "--large-shape",
    "20",
    "160",
    "160",
    "--large-repeats",
    "2",
)


def positive(value):
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("benchmark")


@pytest.fixture(scope="module")
def report(root):
    out = root / "results.json"
    process = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "benchmark.py"),
            *ARGS,
            "--workdir",
            str(root / "work"),
            "--out",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert process.returncode == 0, process.stdout + process.stderr
    assert "Ratios" in process.stdout
    return json.loads(out.read_text())


def test_writes_every_section(report):
    for section in SECTIONS:
        assert report.get(section), section
    assert report["machine"]["cpu_count"] >= 1
    assert report["settings"]["stacks"] == 2
    bytecode = report["machine"]["bytecode"]  # compiled imports or not: start-up
    assert set(bytecode) >= {"dont_write_bytecode", "snakemake", "pandas"}
    assert all(isinstance(value, bool) for value in bytecode.values())


def test_in_process_runs_have_positive_times(report):
    for name in ("seed", "library", "skimage"):
        section = report[name]
        for key in ("process_wall_s", "first_stack_s", "median_stack_s", "max_rss_mb"):
            assert positive(section[key]), (name, key)
        assert len(section["nuclei"]) == 2
        steps = section["median_steps_s"]
        assert {"read", "resample", "equalize", "background", "segment"} <= set(steps)
        assert all(positive(v) for v in steps.values()), (name, steps)
    seed = report["seed"]
    assert positive(seed["cold"]["first_stack_s"])
    assert "statistics" in seed["median_steps_s"]
    assert report["library"]["cold"] is None  # --cold seed
    assert report["library"]["device"]["name"]


def test_workflow_ran_every_job(report):
    workflow = report["workflow"]
    assert positive(workflow["wall_s"])
    assert workflow["batches"] == 1
    stages = workflow["per_stage"]
    assert workflow["jobs"] == sum(v["jobs"] for v in stages.values())
    for stage in ("resample", "equalize", "background", "segment", "measure"):
        assert stages[stage]["jobs"] == 1, stage  # both stacks, one job
    assert stages["collect_statistics"]["jobs"] == 1
    assert all(positive(v) for v in workflow["median_job_s"].values())
    timeline = workflow["timeline"]
    assert 0 < timeline["first_stage_job_start_s"] < timeline["last_stage_job_end_s"]
    assert timeline["last_stage_job_end_s"] <= timeline["last_job_end_s"]
    assert timeline["last_job_end_s"] < workflow["wall_s"]
    assert 0 < timeline["stage_jobs_busy"] <= 1.0
    # Snakemake's own process (not its jobs): at least its imports, and less
    # than the run's wall on the one core it mostly uses.
    assert 0.2 < workflow["snakemake_cpu_s"] < workflow["wall_s"]
    # Same library, same device: the workflow finds what the library finds.
    assert workflow["nuclei"] == report["library"]["nuclei"]


def test_the_floor_runs_the_stages_in_plain_processes(report):
    floor = report["floor"]
    assert floor["processes"] == 2
    assert positive(floor["wall_s"]) and positive(floor["median_stack_s"])
    stages = floor["median_stage_s"]
    assert set(stages) == set(STAGES)
    assert all(positive(seconds) for seconds in stages.values()), stages
    assert sum(stages.values()) <= floor["median_stack_s"] * 1.5
    assert positive(report["ratios"]["end_to_end"]["workflow/floor"])


def test_the_labels_only_floor_writes_what_scikit_image_writes(report, root):
    floor = report["floor_labels"]
    assert floor["processes"] == 2 and floor["median_stage_s"] == {}
    assert positive(floor["wall_s"]) and positive(floor["median_stack_s"])
    assert positive(report["ratios"]["end_to_end"]["floor_labels/skimage"])
    # The same stage functions, chained on the device: the floor's labels and
    # statistics, and no other file.
    runs = root / "work" / "runs"
    stacks = sorted(p.name for p in (runs / "floor" / "out").iterdir())
    assert len(stacks) == 2
    for stack in stacks:
        only = runs / "floor-labels" / "out" / stack
        written = sorted(p.name for p in only.iterdir())
        assert written == ["labels.tif", "statistics.csv"]
        full = runs / "floor" / "out" / stack
        labels = tifffile.imread(only / "labels.tif")
        assert labels.max() > 0
        np.testing.assert_array_equal(labels, tifffile.imread(full / "labels.tif"))
        pd.testing.assert_frame_equal(
            pd.read_csv(only / "statistics.csv"), pd.read_csv(full / "statistics.csv")
        )


def test_targets_are_judged(report):
    targets = {row["target"]: row for row in report["targets"]}
    assert targets["statistics, s per stack"]["limit"] == 0.010
    for row in targets.values():
        assert row["met"] == (row["measured"] <= row["limit"]), row


def test_ratios_and_dry_run(report):
    for kind in ("end_to_end", "per_stack"):
        values = report["ratios"][kind]
        for key in ("workflow/seed", "skimage/seed", "library/seed"):
            assert positive(values[key]), (kind, key)
    (dry_run,) = report["dry_run"]
    assert dry_run["stacks"] == 20
    assert dry_run["batches"] == 1
    assert dry_run["jobs"] >= 6 + 2  # 6 stage jobs a batch, run-wide ones
    assert positive(dry_run["wall_s"]) and positive(dry_run["max_rss_mb"])
    bare = dry_run["bare_layout"]  # the same sheet, six rules per stack, nothing else
    assert bare["jobs"] == 20 * 6 + 1
    assert positive(bare["wall_s"]) and positive(bare["max_rss_mb"])


def test_large_stack_runs_repeat_in_one_process(report):
    large = report["large"]
    assert large["shape"] == [20, 160, 160] and large["repeats"] == 2
    for name in ("seed", "library", "skimage"):
        data = large[name]
        for key in ("stack_s", "first_stack_s", "process_wall_s", "max_rss_mb"):
            assert positive(data[key]), (name, key)
        assert data["nuclei"] > 0
    assert positive(large["library"]["steps_s"]["pipeline"])
    targets = {row["target"]: row for row in report["targets"]}
    measured = targets["large stack pipeline, s"]["measured"]
    assert measured == large["library"]["steps_s"]["pipeline"]
