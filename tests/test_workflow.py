"""The workflow end to end on tiny demo stacks: outputs, metadata, reruns, errors."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest
import tifffile
import yaml

from nuclei3d import io
from nuclei3d.batches import batch_of
from nuclei3d.measure import COLUMNS, SUMMARY_COLUMNS

from .conftest import (
    REPO,
    SNAKEMAKE,
    copy_workflow,
    edit_config,
    job_counts,
    make_workdir,
    planned_jobs,
    run_snakemake,
    stack_log,
    write_sheet,
)

pytestmark = pytest.mark.workflow

SAMPLES = ("stack_a", "stack_b")
STAGES = ("resample", "equalize", "background", "segment", "overlay", "measure")
GPU_STAGES = STAGES[:5]  # measure runs on the CPU
PER_STACK_FILES = (
    "resampled.tif",
    "equalized.tif",
    "background.tif",
    "labels.tif",
    "statistics.csv",
    "validation.csv",
)


PLOTS_OF_STATISTICS = {("plot_nuclei", ""), ("plot_volumes", "")}


def jobs_for(rules, samples=SAMPLES):
    return {(rule, sample) for rule in rules for sample in samples}


def expected_reruns(reruns, samples=SAMPLES):
    """The jobs a change to the first of `reruns` plans: those stages per stack,
    and what is built on them (validation, run tables, figures). Equalize writes
    the depth profiles that plot_depth draws; measure the tables of the others."""
    expected = jobs_for(reruns, samples) | {("all", "")}
    if "measure" in reruns:
        expected |= {("collect_statistics", ""), *PLOTS_OF_STATISTICS}
    if "equalize" in reruns:
        expected |= {("plot_depth", "")}
    if "validate" in reruns:
        expected |= {("collect_validation", "")}
    if "segment" in reruns:
        expected |= jobs_for(["validate"], samples) | {("collect_validation", "")}
    return expected


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A workflow copy and a run folder in which the whole workflow has run once."""
    root = tmp_path_factory.mktemp("workflow")
    workflow = copy_workflow(root / "code")
    workdir = make_workdir(root / "run", SAMPLES)
    run_snakemake(workdir, snakefile=workflow / "Snakefile")
    return workflow, workdir


def test_writes_every_output_under_results(finished_run):
    _, workdir = finished_run
    results = workdir / "results"
    for sample in SAMPLES:
        for name in PER_STACK_FILES:
            assert (results / sample / name).is_file(), name
        pngs = sorted(p.name for p in (results / sample / "overlay").glob("*.png"))
        assert pngs == ["contact_sheet.png", "projections.png"]
        # 30 z slices at 1 µm, every 20: z = 0 and 20, side by side, each
        # (150 x 150 px at 0.202 µm: 30 x 30 at 1 µm) enlarged 18 times.
        sheet = iio.imread(results / sample / "overlay" / "contact_sheet.png")
        assert sheet.shape[1] > 2 * 540 and 540 < sheet.shape[0] < 2 * 540
        for stage in STAGES:
            log = stack_log(results, stage, sample)
            assert re.search(r"job ends after [0-9.]+ s", log), stage
    assert not list(results.rglob("*.part"))  # no temporary files left behind


def test_stage_jobs_run_in_warm_processes_they_share(finished_run):
    """Each stage job's process hands its job to a warm stage process (its log
    names both), started while Snakemake planned or by an earlier job; later
    jobs of the run reuse those (nuclei3d.warm)."""
    _, workdir = finished_run
    logs = sorted((workdir / "results/logs").glob("*/*.log"))
    stage_logs = [log.read_text() for log in logs if log.parent.name in STAGES]
    assert len(stage_logs) >= len(STAGES)
    job_pids, stage_pids = set(), []
    for text in stage_logs:
        job_pids.add(int(re.search(r", pid (\d+),", text).group(1)))
        found = re.search(r"stage process (\d+), its job", text)
        stage_pids.append(int(found.group(1)))
    assert not job_pids & set(stage_pids)
    assert len(set(stage_pids)) < len(stage_logs)
    assert any("(warm)" in text for text in stage_logs)
    # A process that Snakemake started while it planned, which had opened the
    # device before its first job came.
    assert any("its job 1 (warm)" in text for text in stage_logs)


def test_tiffs_carry_voxel_size(finished_run):
    _, workdir = finished_run
    image, voxel = io.read_stack(workdir / "resources/demo/stack_a/image.tif")
    assert image.shape == (30, 150, 150)
    assert voxel == pytest.approx((1.0, 0.202, 0.202))
    for name in ("resampled.tif", "equalized.tif", "background.tif", "labels.tif"):
        stack, voxel = io.read_stack(workdir / "results/stack_a" / name)
        assert voxel == pytest.approx((1.0, 1.0, 1.0)), name
        assert stack.shape == (30, 30, 30), name


def test_labels_and_tables_agree(finished_run):
    _, workdir = finished_run
    results = workdir / "results"
    run_table = pd.read_csv(results / "label_statistics.csv")
    summary = pd.read_csv(results / "summary.csv")
    assert run_table.columns.tolist() == ["sample", *COLUMNS, "parameter_set"]
    assert summary.columns.tolist() == ["sample", *SUMMARY_COLUMNS]
    for sample in SAMPLES:
        labels, _ = io.read_stack(results / sample / "labels.tif")
        table = pd.read_csv(results / sample / "statistics.csv")
        found = sorted(set(np.unique(labels)) - {0})
        assert found and table["label"].tolist() == found
        assert table["voxel_count"].sum() == (labels > 0).sum()
        assert summary.set_index("sample").at[sample, "nuclei"] == len(found)
        assert (run_table["sample"] == sample).sum() == len(found)


def test_logs_name_the_opencl_device(finished_run):
    _, workdir = finished_run
    for stage in GPU_STAGES:
        text = stack_log(workdir / "results", stage, "stack_a")
        assert "OpenCL device" in text, stage


def test_every_run_leaves_its_record(finished_run):
    _, workdir = finished_run
    results = workdir / "results"
    (path,) = (results / "provenance").glob("*.yaml")
    record = yaml.safe_load(path.read_text())
    assert record["status"] == "success" and record["ended"] >= record["started"]
    assert record["config"]["segment"] == {
        "spot_sigma_um": 3.0,
        "outline_sigma_um": 1.0,
    }
    assert record["packages"]["pyclesperanto-prototype"] == "0.24.6"
    assert record["project"]["version"] == "0.1.0"
    assert record["project"]["git_commit"] is None  # a copy of the code, no git
    parameters = record["parameter_set"]
    assert parameters["parameters"]["segment"] == record["config"]["segment"]
    assert set(parameters["code"]) == {"resample", "equalize", "background", "segment"}
    # The tables name the parameter set that made them.
    table = pd.read_csv(results / "label_statistics.csv")
    assert set(table["parameter_set"]) == {parameters["id"]}
    # Each OpenCL stage's jobs, with the device, its platform version and driver.
    devices = record["opencl_devices"]
    assert {"resample", "equalize", "background", "segment", "overlay"} <= set(devices)
    for stage in ("resample", "segment"):
        ((device, jobs),) = devices[stage].items()
        assert jobs == len(SAMPLES)
        assert re.fullmatch(r".+ on .+ \[.+; driver .+\]", device), device


def test_nothing_to_do_after_a_run(finished_run):
    workflow, workdir = finished_run
    assert planned_jobs(workdir, snakefile=workflow / "Snakefile") == set()


def changed_config(workdir, tmp_path, section, key, value):
    """A copy of the run's config with one value changed, for --configfile."""
    (tmp_path / "config").mkdir()
    shutil.copy(workdir / "config/config.yaml", tmp_path / "config")
    edit_config(tmp_path, section, key, value)
    return tmp_path / "config/config.yaml"


@pytest.mark.parametrize(
    ("section", "key", "value", "reruns"),
    [
        ("resample", "target_voxel_size_um", 1.5, STAGES),
        ("equalize", "enabled", False, STAGES[1:]),
        ("background", "radius_um", 4.0, STAGES[2:]),
        ("segment", "spot_sigma_um", 2.5, STAGES[3:]),
        ("segment", "outline_sigma_um", 1.5, STAGES[3:]),
        ("overlay", "every_n_slices", 10, ("overlay",)),
    ],
)
def test_parameter_change_reruns_only_that_stage_and_downstream(
    finished_run, tmp_path, section, key, value, reruns
):
    workflow, workdir = finished_run
    config = changed_config(workdir, tmp_path, section, key, value)
    jobs = planned_jobs(
        workdir, "--configfile", str(config), snakefile=workflow / "Snakefile"
    )
    assert jobs == expected_reruns(reruns)


@pytest.mark.parametrize(
    ("override", "reruns"),
    [
        ("segment={spot_sigma_um: 2.5}", STAGES[3:]),
        ("segment={spot_sigma_um: 3.0}", ()),  # the config's value: nothing
        ("overlay={every_n_slices: 10}", ("overlay",)),
    ],
)
def test_command_line_overrides_mean_their_numbers(finished_run, override, reruns):
    """Snakemake hands nested --config values over as strings ('2.5'): the
    workflow reads them as the schema types them."""
    workflow, workdir = finished_run
    jobs = planned_jobs(workdir, "--config", override, snakefile=workflow / "Snakefile")
    assert jobs == (expected_reruns(reruns) if reruns else set())


def test_device_choice_reruns_nothing(finished_run, tmp_path):
    workflow, workdir = finished_run
    config = changed_config(workdir, tmp_path, None, "device", "pthread")
    jobs = planned_jobs(
        workdir, "--configfile", str(config), snakefile=workflow / "Snakefile"
    )
    assert jobs == set()


@pytest.mark.parametrize(
    ("module", "reruns"),
    [
        ("resample", STAGES),
        ("equalize", STAGES[1:]),
        ("background", STAGES[2:]),
        ("segment", STAGES[3:]),
        ("kernels/equalize_slices.cl", STAGES[1:]),  # named in equalize.py
        ("kernels/grow_labels.cl", STAGES[3:]),  # named in segment.py
        ("kernels/seed_points.cl", STAGES[3:]),
        ("kernels/top_hat_box.cl", STAGES[2:]),  # named in background.py
        ("kernels/filters.cl", STAGES),  # named in resample.py and segment.py
        ("slabs", STAGES),  # resample and measure use it
        ("overlay", ("overlay",)),
        ("measure", ("measure",)),
        ("validate", ("validate",)),
        ("plots", ()),
    ],
)
def test_library_change_reruns_that_stage_and_downstream(finished_run, module, reruns):
    workflow, workdir = finished_run
    kernel = module.endswith(".cl")
    source = workflow / "src" / "nuclei3d" / (module if kernel else f"{module}.py")
    original = source.read_text()
    source.write_text(original + f"\n{'//' if kernel else '#'} a change to the code\n")
    try:
        jobs = planned_jobs(workdir, snakefile=workflow / "Snakefile")
    finally:
        source.write_text(original)
    plots = {*PLOTS_OF_STATISTICS, ("plot_depth", "")} if module == "plots" else set()
    assert jobs == expected_reruns(reruns) | plots


def test_adding_a_stack_reruns_only_its_batch(finished_run):
    """A stack's batch is a hash of its name: the new stack's batch reruns (its
    stacks already there included), the other batches do not."""
    workflow, workdir = finished_run
    write_sheet(workdir, (*SAMPLES, "stack_c"))
    try:
        jobs = planned_jobs(workdir, snakefile=workflow / "Snakefile")
    finally:
        write_sheet(workdir, SAMPLES)
    batches = yaml.safe_load((workdir / "config/config.yaml").read_text())["batches"]
    mates = [s for s in SAMPLES if batch_of(s, batches) == batch_of("stack_c", batches)]
    expected = expected_reruns(STAGES, ["stack_c", *mates])
    assert jobs == expected | {("demo_stack", "stack_c")}


def test_demo_config_plans_the_three_seed_sized_stacks(tmp_path):
    (tmp_path / "config").mkdir()
    for name in ("config.yaml", "samples.tsv"):
        (tmp_path / "config" / name).write_text((REPO / "config" / name).read_text())
    jobs = planned_jobs(tmp_path)
    samples = {s for rule, s in jobs if rule == "segment"}
    assert samples == {"blastocyst_01", "blastocyst_02", "blastocyst_03"}
    assert {s for rule, s in jobs if rule == "demo_stack"} == samples


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("segment", "spot_sigma_um", -1, r"spot_sigma_um"),
        ("resample", "target_voxel_size_um", "big", r"target_voxel_size_um"),
        ("overlay", "every_n_slices", 0, r"every_n_slices"),
        (None, "default_voxel_size_um", [1, 1], r"default_voxel_size_um"),
    ],
)
def test_bad_config_is_refused_naming_the_key(tmp_path, section, key, value, message):
    workdir = make_workdir(tmp_path, ("stack_a",))
    edit_config(workdir, section, key, value)
    process = run_snakemake(workdir, "--dry-run", check=False)
    assert process.returncode != 0
    assert re.search(message, process.stdout + process.stderr)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            "bad\tx.tif\t\tabc",
            r"row 3 \(sample 'bad'\), column voxel_size_z: 'abc' is not a number",
        ),
        ("neg\tx.tif\t\t-1", r"row 3 \(sample 'neg'\), column voxel_size_z: .*-1"),
        ("../up\tx.tif\t\t", r"row 3 \(sample '../up'\), column sample"),
        ("has space\tx.tif\t\t", r"row 3 \(sample 'has space'\), column sample"),
        ("logs\tx.tif\t\t", r"row 3 \(sample 'logs'\), column sample"),
        ("stack_a\tx.tif\t\t", r"sample names must be unique; repeated: \['stack_a'\]"),
    ],
)
def test_bad_sample_sheet_is_refused_naming_row_and_column(tmp_path, row, message):
    workdir = make_workdir(tmp_path, ())
    (workdir / "config/samples.tsv").write_text(
        "sample\timage\tground_truth\tvoxel_size_z\n"
        "stack_a\tresources/demo/stack_a/image.tif\t\t\n" + row + "\n"
    )
    process = run_snakemake(workdir, "--dry-run", check=False)
    assert process.returncode != 0
    assert re.search(message, process.stdout + process.stderr), process.stderr


def test_unknown_voxel_size_fails_that_stack_only(tmp_path):
    """A stack without voxel size anywhere stops with a clear error; others finish."""
    workdir = make_workdir(tmp_path, ("stack_a",))
    plain = workdir / "plain stack é.tif"  # spaces and non-ASCII must work
    tifffile.imwrite(plain, np.zeros((10, 40, 40), np.uint8))
    write_sheet(workdir, ("stack_a",), extra_rows=[f"nosize\t{plain}\t"])
    # The first run may lose stack_a with its batch; the second runs it.
    run_snakemake(workdir, check=False)
    process = run_snakemake(workdir, check=False)
    assert process.returncode != 0
    log = stack_log(workdir / "results", "resample", "nosize")
    assert "plain stack é.tif: voxel size unknown" in log
    assert (workdir / "results/stack_a/statistics.csv").is_file()
    assert not (workdir / "results/nosize/resampled.tif").exists()


def test_lint_and_format_are_clean():
    lint = subprocess.run(
        [*SNAKEMAKE, "--lint"], cwd=REPO, capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "Congratulations" in lint.stdout + lint.stderr
    for command in (
        ["snakefmt", "--check", "Snakefile", "workflow"],
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
    ):
        tool = Path(sys.executable).parent / command[0]
        checked = subprocess.run(
            [str(tool), *command[1:]], cwd=REPO, capture_output=True, text=True
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_validation_scores_every_annotated_stack(finished_run):
    _, workdir = finished_run
    table = pd.read_csv(workdir / "results/validation.csv")
    assert table["sample"].tolist() == list(SAMPLES)
    assert table["f1_iou50"].between(0, 1).all()
    assert (table["f1_iou75"] <= table["f1_iou50"]).all()
    assert (table["n_true"] > 0).all()


# -- batches: one job runs a stage over a batch of stacks ---------------------------


def test_one_batch_gives_the_same_per_stack_outputs_in_fewer_jobs(
    tmp_path, finished_run
):
    _, batched = finished_run
    samples = (*SAMPLES, "stack_c")
    workdir = make_workdir(tmp_path, samples, batches=1)
    counts = job_counts(workdir)
    for stage in STAGES:
        assert counts[f"{stage}_batch0"] == 1, stage
    assert counts["demo_stack"] == 3  # a local rule per stack: not a stage
    run_snakemake(workdir)
    for sample in SAMPLES:
        for name in ("labels.tif", "statistics.csv", "depth_profile.csv"):
            ours = (workdir / "results" / sample / name).read_bytes()
            assert ours == (batched / "results" / sample / name).read_bytes(), name
    log = (workdir / "results/logs/segment/batch0.log").read_text()
    assert "3 stack(s): stack_a, stack_b, stack_c" in log
    assert "stack_a: " in log and "stack_c: " in log
    summary = (workdir / "results/summary.csv").read_text()
    assert all(sample in summary for sample in samples)
    assert run_snakemake(workdir, "--dry-run").stdout.count("rule ") == 0


def test_stage_rules_get_their_kinds_and_their_stages_set_resources(tmp_path):
    """`--set-resources` for `opencl_stages` / `cpu_stages` reaches every stage
    rule of that kind, and a stage's own entry overrides it."""
    workdir = make_workdir(tmp_path, ("stack_a", "stack_b"), batches=1)
    process = run_snakemake(
        workdir,
        "--dry-run",
        "--set-resources",
        "opencl_stages:mem_mb=1111",
        "cpu_stages:mem_mb=2222",
        "segment:mem_mb=3333",
    )

    def block(rule):
        return process.stdout.split(f"rule {rule}:")[1].split("\n\n")[0]

    assert "mem_mb=3333" in block("segment_batch0")
    assert "mem_mb=1111" in block("background_batch0")
    assert "gpu=1" in block("background_batch0")
    assert "mem_mb=2222" in block("measure_batch0")
    assert "gpu=" not in block("measure_batch0")


def test_a_bad_stack_fails_its_batch_once_then_runs_alone(tmp_path):
    """A stack whose data is bad (NaN: only reading it shows) fails its batch's
    job, which writes none of its outputs; the failure list names it and its
    batch-mates, and the next run gives it a batch of its own and finishes the
    others. An unreadable file runs alone from the start."""
    workdir = make_workdir(tmp_path, ("stack_a",), batches=1)
    nan = tmp_path / "nan.tif"
    image = np.full((12, 40, 40), 5, np.float32)
    image[3, 4, 5] = np.nan
    io.write_stack(nan, image, (1.0, 0.2, 0.2))
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"not a tiff")
    write_sheet(
        workdir,
        ("stack_a",),
        extra_rows=[f"nan\t{nan}\t", f"broken\t{broken}\t"],
    )
    counts = job_counts(workdir)
    assert counts["resample_batch0"] == counts["resample_broken"] == 1
    process = run_snakemake(workdir, check=False)
    text = process.stdout + process.stderr
    assert process.returncode != 0
    assert (
        "nan.tif: holds 1 NaN"
        in (workdir / "results/logs/resample/batch0.log").read_text()
    )
    assert "broken.tif" in (workdir / "results/logs/resample/broken.log").read_text()
    assert "results/logs/resample/batch0.log" in text
    assert not (workdir / "results/stack_a/resampled.tif").exists()
    failed = pd.read_csv(
        workdir / "results/failed_stacks.tsv", sep="\t", keep_default_na=False
    )
    reasons = dict(zip(failed["sample"], failed["reason"], strict=True))
    assert reasons["stack_a"].startswith("lost with its batch: its job failed on nan")
    assert "nan.tif: holds 1 NaN" in reasons["nan"]
    assert "not a readable TIFF" in reasons["broken"]
    # The next run: nan alone, stack_a finishes in its batch.
    counts = job_counts(workdir)
    assert counts["resample_nan"] == counts["resample_batch0"] == 1
    process = run_snakemake(workdir, check=False)
    assert process.returncode != 0
    assert (workdir / "results/stack_a/statistics.csv").is_file()
    failed = pd.read_csv(
        workdir / "results/failed_stacks.tsv", sep="\t", keep_default_na=False
    )
    assert sorted(failed["sample"]) == ["broken", "nan"]
    assert not list((workdir / "results").rglob("*.part"))


# -- adding a stage ------------------------------------------------------------------

NEW_STAGE = '''"""Stage smooth: a Gaussian blur of the background-subtracted stack."""

OPENCL = True


def run_stage(stack, log):
    import pyclesperanto_prototype as cle

    from .job import transform_stack

    sigma = stack.params["sigma_um"]
    transform_stack(
        stack,
        2,
        lambda image, um: cle.pull(
            cle.gaussian_blur(image, sigma_x=sigma / um, sigma_y=sigma / um,
                              sigma_z=sigma / um)
        ),
    )
'''

NEW_RULE = """STAGE_OUTPUTS["smooth"] = "smoothed.tif"


for unit in units("smooth"):

    rule:
        name:
            unit.rule("smooth")
        input:
            background=unit.files("background", "background.tif"),
        output:
            unit.files("smooth", "smoothed.tif"),
        log:
            unit.log("smooth"),
        group:
            unit.group
        resources:
            **stage_resources("smooth"),
        params:
            stage="smooth",
            stacks=unit.stacks("smooth"),
            code=code_fingerprint("smooth", "io"),
        conda:
            ENV
        script:
            STAGE_SCRIPT
"""

NEW_SCHEMA = """  smooth:
    type: object
    additionalProperties: false
    default: {sigma_um: 1.0}
    properties:
      sigma_um: {$ref: "#/definitions/positive"}
"""


def test_a_new_stage_takes_a_module_a_rule_file_and_a_schema_entry(tmp_path):
    """Three files touched (the fourth place is its test: this one), nothing else:
    the stage runs for every stack, in the run's batches, from the rule `all`,
    its own target and `--set-resources` of its kind."""
    workflow = copy_workflow(tmp_path / "code")
    (workflow / "src/nuclei3d/smooth.py").write_text(NEW_STAGE)
    (workflow / "workflow/rules/smooth.smk").write_text(NEW_RULE)
    schema = workflow / "workflow/schemas/config.schema.yaml"
    text = schema.read_text()
    schema.write_text(text.replace("  overlay:\n", NEW_SCHEMA + "  overlay:\n", 1))
    workdir = make_workdir(tmp_path / "run", SAMPLES, batches=1)
    process = run_snakemake(workdir, "--dry-run", snakefile=workflow / "Snakefile")
    for sample in SAMPLES:  # rule `all` asks for it
        assert f"results/{sample}/smoothed.tif" in process.stdout
    assert "rule smooth_batch0:" in process.stdout
    process = run_snakemake(
        workdir,
        "--dry-run",
        "--set-resources",
        "opencl_stages:mem_mb=1234",
        snakefile=workflow / "Snakefile",
    )
    block = process.stdout.split("rule smooth_batch0:")[1].split("\n\n")[0]
    assert "mem_mb=1234" in block and "gpu=1" in block
    run_snakemake(workdir, "smooth", snakefile=workflow / "Snakefile")
    smoothed, voxel = io.read_stack(workdir / "results/stack_a/smoothed.tif")
    background, _ = io.read_stack(workdir / "results/stack_a/background.tif")
    assert smoothed.shape == background.shape and voxel == pytest.approx((1, 1, 1))
    assert smoothed.std() < background.std()  # blurred
