"""A broken stack says what is wrong, leaves nothing behind, and loses nothing.

The workflow runs twice (the same command, `--keep-going` from the default
profile) over a sheet that mixes good stacks with every kind of bad input, in
the default batches. A file that cannot be opened runs in a batch of its own
from the start; a stack whose data is bad fails its batch's job in the first
run (the failure list names it, and its batch-mates as lost with it), and runs
alone in the second, which finishes every good stack.
"""

import os
import re
import signal
import subprocess
import time

import numpy as np
import pandas as pd
import pytest
import tifffile
import yaml

from nuclei3d import io
from nuclei3d.demo import make_demo_stack
from nuclei3d.measure import COLUMNS

from .conftest import REPO, SNAKEMAKE, make_workdir, run_snakemake

pytestmark = pytest.mark.workflow

VOXEL = (1.0, 0.202, 0.202)


def write_inputs(folder):
    """Sheet rows (sample, image, channel, voxel z, y, x) and the expected error."""
    folder.mkdir()
    image, _ = make_demo_stack(shape=(30, 150, 150), n_nuclei=8, seed=3)
    rows, errors = [], {}

    def add(sample, path, error=None, channel="", voxel=("", "", "")):
        rows.append([sample, str(path), str(channel), *map(str, voxel)])
        if error:
            errors[sample] = error

    odd = folder / "späce dir" / "stack ü 1.tif"  # must simply work
    odd.parent.mkdir()
    io.write_stack(odd, image, VOXEL)
    add("odd_path", odd)
    add("missing", folder / "missing.tif", "missing.tif: file not found")
    good = folder / "good.tif"
    io.write_stack(good, image, VOXEL)
    cut = folder / "truncated.tif"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    add("truncated", cut, "truncated.tif: truncated or corrupt TIFF")
    text = folder / "notes.tif"
    text.write_text("not an image\n")
    add("not_tiff", text, "notes.tif: not a readable TIFF stack")
    flat = folder / "flat.tif"
    tifffile.imwrite(flat, image[0])
    add("flat", flat, "flat.tif: expected one 3D single-channel stack", voxel=VOXEL)
    rgb = folder / "rgb.tif"
    tifffile.imwrite(rgb, np.stack([image] * 3, axis=-1), photometric="rgb")
    add("rgb", rgb, "rgb.tif: has 3 channels", voxel=VOXEL)
    add("rgb_channel_1", rgb, channel=1, voxel=VOXEL)  # the remedy works
    nan = folder / "nan.tif"
    with_nan = image.astype(np.float32)
    with_nan[3, 4, 5:9] = np.nan
    io.write_stack(nan, with_nan, VOXEL)
    add("nan", nan, "nan.tif: holds 4 NaN and 0 infinite voxels")
    zeros = folder / "zeros.tif"
    io.write_stack(zeros, np.zeros_like(image), VOXEL)
    add("all_zero", zeros)
    plain = folder / "no_size.tif"
    tifffile.imwrite(plain, image)
    add("no_voxel_size", plain, "no_size.tif: voxel size unknown")
    tiny = folder / "tiny.tif"
    io.write_stack(tiny, image[:2, :4, :4], (0.2, 0.2, 0.2))
    add(
        "smaller_than_voxel",
        tiny,
        "tiny.tif: `target_voxel_size_um` (1.0 µm) is larger",
    )
    return rows, errors


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_input")
    workdir = make_workdir(root / "run", ())
    rows, errors = write_inputs(root / "inputs")
    header = "sample\timage\tchannel\tvoxel_size_z\tvoxel_size_y\tvoxel_size_x"
    lines = [header, *("\t".join(row) for row in rows)]
    (workdir / "config/samples.tsv").write_text("\n".join(lines) + "\n")
    first = run_snakemake(workdir, check=False)
    first_failed = pd.read_csv(
        workdir / "results/failed_stacks.tsv",
        sep="\t",
        dtype=str,
        keep_default_na=False,
    )
    process = run_snakemake(workdir, check=False)
    return workdir, errors, process, first, first_failed


GOOD = ("odd_path", "rgb_channel_1", "all_zero")


def test_the_first_run_names_every_stack_it_did_not_finish(mixed_run):
    _, errors, _, first, failed = mixed_run
    assert first.returncode != 0
    reasons = dict(zip(failed["sample"], failed["reason"], strict=True))
    for sample, error in errors.items():
        assert error in reasons[sample], sample
    for sample in GOOD:
        assert sample not in reasons or reasons[sample].startswith(
            "lost with its batch: its job failed on "
        ), reasons[sample]


def test_the_second_run_fails_but_every_good_stack_is_finished(mixed_run):
    workdir, _, process, _, _ = mixed_run
    assert process.returncode != 0
    for sample in GOOD:
        assert (workdir / "results" / sample / "statistics.csv").is_file(), sample
        assert (workdir / "results" / sample / "overlay").is_dir(), sample


@pytest.mark.parametrize(
    "sample",
    [
        "missing",
        "truncated",
        "not_tiff",
        "flat",
        "rgb",
        "nan",
        "no_voxel_size",
        "smaller_than_voxel",
    ],
)
def test_each_bad_stack_gets_its_message_and_leaves_nothing(mixed_run, sample):
    workdir, errors, *_ = mixed_run
    log = (workdir / "results/logs/resample" / f"{sample}.log").read_text()  # alone
    assert errors[sample] in log
    assert not (workdir / "results" / sample).exists(), "partial output left behind"


def test_failed_stacks_are_listed_with_stage_reason_and_log(mixed_run):
    workdir, errors, process, *_ = mixed_run
    table = pd.read_csv(
        workdir / "results/failed_stacks.tsv",
        sep="\t",
        dtype=str,
        keep_default_na=False,
    )
    assert list(table.columns) == ["sample", "stage", "reason", "log"]
    assert sorted(table["sample"]) == sorted(errors)
    for row in table.itertuples():
        assert row.stage == "resample", row
        assert errors[row.sample] in row.reason, row
        assert "\n" not in row.reason
        assert (workdir / row.log).is_file(), row
    output = process.stdout + process.stderr
    assert re.search(
        rf"{len(errors)} of \d+ stacks failed, .* in results/failed_stacks.tsv; fix "
        r"them and run the same command again to redo just those",
        output,
    )


def test_the_runs_record_counts_its_failed_stacks(mixed_run):
    workdir, errors, *_ = mixed_run
    path = sorted((workdir / "results/provenance").glob("*.yaml"))[-1]  # the second
    record = yaml.safe_load(path.read_text())
    assert record["status"] == "failed"
    assert record["failed_stacks"] == len(errors)


def test_a_run_without_failures_leaves_no_failure_list(tmp_path):
    """...and its record names the project's git commit."""
    workdir = make_workdir(tmp_path, ("s1",))
    (workdir / "results").mkdir()
    (workdir / "results/failed_stacks.tsv").write_text("sample\tstage\n")
    run_snakemake(workdir, "resample")
    assert not (workdir / "results/failed_stacks.tsv").exists()
    (path,) = (workdir / "results/provenance").glob("*.yaml")
    record = yaml.safe_load(path.read_text())
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert record["project"]["git_commit"] == head


def test_all_zero_stack_gives_empty_tables_with_columns(mixed_run):
    workdir, *_ = mixed_run
    table = pd.read_csv(workdir / "results/all_zero/statistics.csv")
    assert table.empty and table.columns.tolist() == [*COLUMNS, "parameter_set"]
    labels, _ = io.read_stack(workdir / "results/all_zero/labels.tif")
    assert labels.max() == 0


def test_channel_column_selects_the_channel(mixed_run):
    workdir, *_ = mixed_run
    odd = pd.read_csv(workdir / "results/odd_path/statistics.csv")
    rgb = pd.read_csv(workdir / "results/rgb_channel_1/statistics.csv")
    pd.testing.assert_frame_equal(odd, rgb)  # same image data, one channel of three


def test_nothing_written_outside_results_and_logs(mixed_run):
    workdir, *_ = mixed_run
    top = {p.name for p in workdir.iterdir()}
    assert top <= {"config", "results", ".snakemake"}, top


def test_yaml_object_construction_is_refused(tmp_path):
    workdir = make_workdir(tmp_path, ("stack_a",))
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.yaml"
    evil.write_text(f'results: !!python/object/apply:os.system ["touch {marker}"]\n')
    process = run_snakemake(
        workdir, "--dry-run", "--configfile", str(evil), check=False
    )
    assert process.returncode != 0
    assert not marker.exists()


def test_too_large_for_the_device_is_a_clear_error(tmp_path):
    """PoCL limited to 1 GiB (256 MiB per buffer) stands in for a small GPU."""
    workdir = make_workdir(tmp_path, (), device="pocl", batches=0)
    big = tmp_path / "big.tif"
    # 1 µm voxels: resampling keeps the shape, so the device gets the whole stack
    io.write_stack(big, np.zeros((80, 1000, 1000), np.uint8), (1.0, 1.0, 1.0))
    (workdir / "config/samples.tsv").write_text(f"sample\timage\nbig\t{big}\n")
    env = dict(os.environ, POCL_MEMORY_LIMIT="1")
    env.pop("CUDA_VISIBLE_DEVICES", None)
    started = time.monotonic()
    process = run_snakemake(workdir, "resample", check=False, env=env)
    assert process.returncode != 0
    assert time.monotonic() - started < 120
    log = (workdir / "results/logs/resample/big.log").read_text()
    assert "big.tif: too large for" in log
    assert "(80, 1000, 1000) image takes 0.30 GiB" in log
    assert not (workdir / "results/big").exists()


def completed_outputs(workdir):
    results = workdir / "results"
    return {
        str(p.relative_to(results)): p.read_bytes()
        for p in sorted(results.rglob("*"))
        if p.is_file()
        and "logs" not in p.parts
        and "benchmarks" not in p.parts
        and "provenance" not in p.parts
        and p.name != ".snakemake_timestamp"
    }


def test_sigkill_mid_stage_then_rerun_gives_a_clean_runs_outputs(tmp_path):
    samples = ("k1", "k2")
    clean = make_workdir(tmp_path / "clean", samples, batches=1)
    run_snakemake(clean)
    killed = make_workdir(tmp_path / "killed", samples, batches=1)
    command = [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--cores", "2"]
    run = subprocess.Popen(
        command,
        cwd=killed,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    segment_log = killed / "results/logs/segment/batch0.log"
    deadline = time.monotonic() + 300
    while not segment_log.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert segment_log.exists(), "segment never started"
    os.killpg(run.pid, signal.SIGKILL)  # snakemake and every job, mid-stage
    run.wait()
    assert not (killed / "results/k1/labels.tif").exists()
    run_snakemake(killed, "--unlock")
    run_snakemake(killed)
    assert completed_outputs(killed).keys() == completed_outputs(clean).keys()
    for name, content in completed_outputs(clean).items():
        if name.endswith((".tif", ".csv")):
            assert completed_outputs(killed)[name] == content, name
