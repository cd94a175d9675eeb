# Sample sheet, config validation, paths and input functions shared by all rules.
import os
import re
import sys
import time
from functools import cache, partial
from pathlib import Path

import pandas as pd
import yaml
from jsonschema import ValidationError
from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import validate

# The stage library lives in src/. This process imports it for code fingerprints;
# jobs (scripts, in conda envs, on cluster nodes, which parse this file again)
# inherit it through PYTHONPATH (below), whether or not it is pip-installed.
LIBRARY = str(Path(workflow.basedir) / "src")
sys.path.insert(0, LIBRARY)

from nuclei3d.batches import make_batches
from nuclei3d.config import typed_like_schema
from nuclei3d.failures import (
    failed_samples,
    failed_stacks,
    report_description,
    write_failed_stacks,
)
from nuclei3d.fingerprint import code_fingerprint
from nuclei3d.formats import LayoutCache, expand_sheet
from nuclei3d.io import StackError
from nuclei3d.job import device_settings, finish_opencl_check, start_opencl_check
from nuclei3d.provenance import finish_record, parameter_set, start_record
from nuclei3d.sweep import SWEPT, sweep_combinations
from nuclei3d.warm import first_on_path, prestart

# First on PYTHONPATH and only once, so that a job of a cluster run, which parses
# this file again, has the environment its node's warm processes were keyed on.
os.environ.update(PYTHONPATH=first_on_path(LIBRARY, os.getenv("PYTHONPATH")))

# `--config segment='{spot_sigma_um: 2.5}'` gives '2.5': read as the schema types it.
CONFIG_SCHEMA = Path(workflow.basedir) / "workflow/schemas/config.schema.yaml"
config.update(typed_like_schema(config, yaml.safe_load(CONFIG_SCHEMA.read_text())))
validate(config, schema="../schemas/config.schema.yaml")


def layout_or_none(layouts, path):
    """A file's layout; None where it is missing or unreadable (its stack fails
    later, with the file's error, as a bad TIFF does)."""
    try:
        return layouts.layout(path) if os.path.exists(path) else None
    except StackError:
        return None


def load_samples(path):
    """Read and validate the sample sheet: one row per sample, indexed by name,
    and the samples whose file is missing or unreadable."""
    # Only empty cells are missing: a sample may be called "NA" or "nan".
    sheet = pd.read_csv(
        path, sep="\t", dtype=str, comment="#", keep_default_na=False, na_values=[""]
    ).dropna(how="all")
    if "channel" in sheet:  # an index, or a channel's name
        sheet["channel"] = [
            int(c) if isinstance(c, str) and c.isdigit() else c
            for c in sheet["channel"]
        ]
    for column in ("voxel_size_z", "voxel_size_y", "voxel_size_x", "timepoint"):
        if column in sheet:
            values = pd.to_numeric(sheet[column], errors="coerce")
            bad = sheet[column].notna() & values.isna()
            if bad.any():
                row = bad.idxmax()
                raise ValueError(
                    f"{path}: row {row + 2} (sample {sheet.at[row, 'sample']!r}), "
                    f"column {column}: {sheet.at[row, column]!r} is not a number"
                )
            sheet[column] = values
    try:
        validate(sheet, schema="../schemas/samples.schema.yaml")
    except WorkflowError as error:
        row = int(re.search(r"row (\d+)", str(error)).group(1))
        cause = error.__context__  # the jsonschema ValidationError
        if not isinstance(cause, ValidationError):
            raise
        column = cause.path[0] if cause.path else "(row)"
        raise ValueError(
            f"{path}: row {row + 2} (sample {sheet['sample'].iloc[row]!r}), "
            f"column {column}: {cause.message}; expected: "
            f"{cause.schema.get('description', cause.schema)}"
        ) from None
    # A file with several scenes or time points: one stack each (from metadata).
    layouts = LayoutCache(Path(".snakemake/nuclei3d/layouts.json"))
    sheet = pd.DataFrame(
        expand_sheet(sheet.to_dict("records"), partial(layout_or_none, layouts)),
        columns=[
            *sheet.columns,
            *(c for c in ("scene", "timepoint") if c not in sheet.columns),
        ],
    )
    unreadable = {
        row["sample"]
        for row in sheet.to_dict("records")
        if not row["image"].startswith("resources/demo/")
        and layouts.problem(row["image"]) is not None
    }
    layouts.save()
    repeated = sheet["sample"][sheet["sample"].duplicated()].unique().tolist()
    if repeated:
        raise ValueError(f"{path}: sample names must be unique; repeated: {repeated}")
    missing = [
        p
        for p in sheet["image"]
        if not (os.path.exists(p) or p.startswith("resources/demo/"))
    ]
    if missing:
        logger.warning(
            f"{path}: {len(missing)} image file(s) not found, their stacks will "
            f"fail: {missing[:5]}{' ...' if len(missing) > 5 else ''}"
        )
    return sheet.set_index("sample", drop=False), unreadable


samples, UNREADABLE = load_samples(config["samples"])
# Each sample's row as a dict (looked up per stack while the rules are read).
SHEET = samples.to_dict("index")
# Stacks with ground truth: validated, and the ones a parameter sweep scores.
ANNOTATED = (
    samples.index[samples["ground_truth"].notna()].tolist()
    if "ground_truth" in samples
    else []
)
RESULTS = config["results"]
# Every rule runs in this environment (`--sdm conda`); envs/nuclei3d.def builds
# an image with the same pinned packages (`--sdm apptainer`, config `container`).
ENV = "../../envs/nuclei3d.yaml"
# The script every stage rule runs (scripts/stage.py, which calls nuclei3d.job).
STAGE_SCRIPT = "../../scripts/stage.py"


wildcard_constraints:
    sample=r"[A-Za-z0-9][A-Za-z0-9._-]*",


def result(name):
    """Path of a per-stack output: {results}/{sample}/<name>."""
    return f"{RESULTS}/{{sample}}/{name}"


def every_stack(*names, of=None):
    """Input function: the per-stack outputs `names` of every stack (or of the
    samples `of`).

    Snakemake lists a function's files only for a job it plans, not for all the
    rules it reads. Each SLURM job's Snakemake reads them all to run one batch
    (10,000 stacks in 100 batches name over 300,000 files).
    """
    return lambda wildcards: expand(
        [result(name) for name in names], sample=samples.index if of is None else of
    )


def image_path(sample):
    return SHEET[sample]["image"]


def image_of(sample):
    """The stack as the resample job's input; none where the file is missing.

    A missing file must fail its own stack's job (with a message naming it), not
    the whole run, so it is not declared as an input. Demo stacks are inputs even
    before they exist: rule demo_stack makes them.
    """
    path = image_path(sample)
    if os.path.exists(path) or path.startswith("resources/demo/"):
        return [path]
    return []


def sheet_value(sample, column):
    """A sheet cell of the sample's row, None where empty (or no such column);
    whole numbers as int (a column with empty cells holds floats). For `channel`
    (an index or a name), `scene` and `timepoint`."""
    value = SHEET[sample].get(column)
    if value is None or pd.isna(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def sheet_voxel_size(sample):
    """Voxel size (z, y, x) from the sheet, or None where any of the three is empty."""
    values = [SHEET[sample].get(f"voxel_size_{axis}") for axis in "zyx"]
    if any(v is None or pd.isna(v) for v in values):
        return None
    return [float(v) for v in values]


# A run on this machine: Snakemake picks the executor only after reading this
# file, but a cluster executor's --jobs (profiles/slurm: `jobs`) is its `nodes`,
# while a local run's is its cores. Not a dry run, nor a job of a cluster run.
LOCAL_RUN = (
    workflow.resource_settings.nodes is None
    and not (workflow.remote_exec or workflow.subprocess_exec)
    and not workflow.output_settings.dryrun
)
# A local run checks, while Snakemake plans, that this machine has a working
# OpenCL device (nuclei3d.probe; with kept verdicts a third of a second), and
# stops before its first job with one message that says how to get one if not.
# On a cluster the jobs' nodes are not this one: there each job checks its own.
OPENCL_CHECK = start_opencl_check(config) if LOCAL_RUN else None


onstart:
    if OPENCL_CHECK is not None:
        finish_opencl_check(OPENCL_CHECK)
    if WARM_PROCESSES is not None:
        WARM_PROCESSES.close()  # the jobs start: they wait for jobs 10 s more
    start_record(
        PROVENANCE,
        config=config,
        basedir=workflow.basedir,
        parameters=labels_parameter_set(),
    )


onsuccess:
    update_failed_stacks()
    finish_record(PROVENANCE, status="success", log_dir=f"{RESULTS}/logs")


onerror:
    failed = update_failed_stacks()
    if failed:
        logger.error(
            f"{failed} of {len(samples)} stacks failed, each with its stage, reason "
            f"and log in {FAILED_STACKS}; fix them and run the same command again "
            "to redo just those (and the run-wide tables), or make a report of the "
            "rest: snakemake --report report.html completed"
        )
    if os.path.exists(PROVENANCE):
        finish_record(
            PROVENANCE,
            status="failed",
            log_dir=f"{RESULTS}/logs",
            failed_stacks=failed,
        )


# Each per-stack stage's output, filled in by the stage's rule file. The target
# `all` and the stage's own target ask for it for every stack, and a run that
# lost stacks lists them, with the stage and the reason, in failed_stacks.tsv.
STAGE_OUTPUTS = {}
FAILED_STACKS = f"{RESULTS}/failed_stacks.tsv"


# Stacks the last run lost (rule `completed` leaves them out, so that a report can
# be made of the rest: a report needs every file it shows).
FAILED_SAMPLES = failed_samples(FAILED_STACKS)
FAILED_ON_THEIR_OWN = failed_samples(FAILED_STACKS, own_failure=True)
# The report's description; after a run that lost stacks, with their count.
REPORT_DESCRIPTION = report_description(
    Path(workflow.basedir) / "workflow/report/workflow.rst",
    FAILED_STACKS,
    Path(".snakemake/nuclei3d/report.rst").resolve(),
    stacks=len(samples),
)


report: str(REPORT_DESCRIPTION)


# The stages whose parameters and code make a stack's labels: the rule file of
# each adds its stage here. Their parameter set's id is in every statistics
# table, the whole set in each run's record under provenance/.
LABEL_STAGES = []


def labels_parameter_set():
    """The labels' parameter set (nuclei3d.provenance.parameter_set); called once
    every rule file has been read (by jobs and `onstart`)."""
    return _parameter_set(tuple(sorted(LABEL_STAGES)))


@cache
def _parameter_set(stages):
    return parameter_set(
        config, stages, code={stage: code_fingerprint(stage, "io") for stage in stages}
    )


def measure_stacks(unit, wildcards):
    """`params.stacks` of a measure job: with the labels' parameter set id (a
    function, evaluated once the rule files that add to LABEL_STAGES are read)."""
    return unit.stacks(None, parameter_set=labels_parameter_set()["id"])


PROVENANCE = f"{RESULTS}/provenance/{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.yaml"


def update_failed_stacks():
    """Bring failed_stacks.tsv up to date (removed when no stack is lost); the count.

    A stack is lost while a stage's output is missing and its job log says why, so
    a later run that leaves it out (`completed`, `--until`) keeps it listed.
    """
    unit_of = {sample: unit for unit in units(None) for sample in unit.samples}
    rows = failed_stacks(
        samples.index,
        list(STAGE_OUTPUTS),
        lambda stage, sample: f"{RESULTS}/{sample}/{STAGE_OUTPUTS[stage]}",
        lambda stage, sample: unit_of[sample].log(stage),
    )
    write_failed_stacks(FAILED_STACKS, rows)
    return len(rows)


# Every per-stack stage runs one job per batch of stacks (nuclei3d.batches): a
# stack's batch is a hash of its name among config `batches`, so adding a stack
# reruns only its batch. A stack that cannot run (missing or unreadable file) or
# that failed on its own in the last run gets a batch of its own.
BATCHES = make_batches(
    samples.index, config["batches"], alone=UNREADABLE | FAILED_ON_THEIR_OWN
)


# A run also starts, while Snakemake plans, warm stage processes for the stage
# jobs it will run on this machine (nuclei3d.warm.prestart): they import
# pyclesperanto and open the device meanwhile, so that a batch's first stage need
# not. A local run: one for each stage job it can run at once. A job of a cluster
# run (the SLURM job of a batch, and the job step that runs its stages, which
# share the job's warm processes): one, which the job step finds ready. Not with
# --sdm (a job's interpreter is then the env's or the container's). A job's
# environment is this process' plus the thread variables Snakemake sets from the
# job's threads (1).
JOB_THREAD_VARIABLES = [
    f"{name}_NUM_THREADS" for name in ("OMP", "GOTO", "OPENBLAS", "MKL", "NUMEXPR")
] + ["VECLIB_MAXIMUM_THREADS"]
if LOCAL_RUN:
    warm_count = min(
        workflow.resource_settings.cores or 1,
        len(BATCHES),
        workflow.global_resources.get("gpu").value or len(BATCHES),
    )
else:
    warm_count = int(workflow.remote_exec and not workflow.output_settings.dryrun)
WARM_PROCESSES = None
if warm_count and not workflow.deployment_settings.deployment_method:
    WARM_PROCESSES, started = prestart(
        warm_count,
        device_settings(config),
        {**os.environ, **dict.fromkeys(JOB_THREAD_VARIABLES, "1")},
    )
    if started:
        logger.info(
            f"nuclei3d: {started} warm stage process(es) start while Snakemake plans"
        )


def stage_resources(stage, *, gpu=True):
    """Resources of a stage's rules (one per unit, `<stage>_<unit>`): a GPU for an
    OpenCL stage, then what `--set-resources` (a profile) gives `opencl_stages` or
    `cpu_stages`, then `<stage>`, as written there (whole numbers as int)."""
    given = workflow.resource_settings.overwrite_resources
    resources = {"gpu": 1} if gpu else {}
    for name in ("opencl_stages" if gpu else "cpu_stages", stage):
        for key, resource in given.get(name, {}).items():
            raw = resource.raw
            resources[key] = int(raw) if str(raw).isdigit() else raw
    return resources


def sheet_params(sample):
    """What resampling a stack needs from the sheet: its file, channel, scene,
    time point and voxel size (and the config's default voxel size)."""
    return dict(
        image=image_path(sample),
        channel=sheet_value(sample, "channel"),
        scene=sheet_value(sample, "scene"),
        timepoint=sheet_value(sample, "timepoint"),
        voxel_size_um=sheet_voxel_size(sample),
        default_voxel_size_um=config["default_voxel_size_um"],
    )


class Unit:
    """The stacks one stage job runs, where it reads and writes, and the values
    of its parameters: one rule per stage and unit (`<stage>_<unit name>`).

    A batch of the run reads and writes `{results}/<sample>/`. A parameter set of
    the sweep runs the annotated stacks in `{results}/sweep/<the swept parameters
    up to that stage>/<sample>/`, so that parameter sets which agree up to a stage
    share its outputs; its values override the config's sections.
    """

    def __init__(self, name, members, *, folders=None, values=None, group="stages"):
        self.name, self.samples = name, list(members)
        self.folders = folders or {}  # stage -> folder; RESULTS where not given
        self.values = values or {}  # config section -> {key: value}
        # One SLURM job runs a batch's stages in order (profiles/slurm). The
        # sweep's units share upstream stages, so several of its GPU stages may
        # run at once: each is a job of its own.
        self.group = group

    def rule(self, stage):
        return f"{stage}_{self.name}"

    def files(self, stage, name):
        """`<stage's folder>/<sample>/<name>` of each stack: the stage's own
        outputs, or what it reads from an earlier stage."""
        folder = self.folders.get(stage, RESULTS)
        return [f"{folder}/{sample}/{name}" for sample in self.samples]

    def needs(self, stage, name):
        """`files(stage, name)` as an input function (see `every_stack`)."""
        return lambda wildcards: self.files(stage, name)

    def log(self, stage):
        return f"{self.folders.get(stage, RESULTS)}/logs/{stage}/{self.name}.log"

    def images(self, wildcards=None):
        """The existing (or demo) raw stacks; an input function (see `image_of`)."""
        return [path for sample in self.samples for path in image_of(sample)]

    def stacks(self, section, each=None, **fixed):
        """`params.stacks`: per stack, `sample`, `each(sample)`, and the config
        section's values (None: no section; the unit's values override them) plus
        `fixed`, in name order:
        Snakemake compares params as written, and a section's key order depends
        on how it was given (a file, or `--config section='{...}'`)."""
        values = {**config.get(section, {}), **self.values.get(section, {}), **fixed}
        return [
            dict(sample=s, **(each(s) if each else {}), **dict(sorted(values.items())))
            for s in self.samples
        ]


def units(stage):
    """The units of a stage's rules: the run's batches (for `validate`, their
    annotated stacks), and the sweep's parameter sets where it sweeps the stage."""
    batches = [Unit(batch, members) for batch, members in BATCHES.items()]
    if stage == "validate":
        batches = [
            Unit(unit.name, [s for s in unit.samples if s in ANNOTATED])
            for unit in batches
            if any(s in ANNOTATED for s in unit.samples)
        ]
    return batches + SWEEP_UNITS.get(stage, [])


# Parameter sweep (`snakemake sweep`): every combination of the values under
# `sweep:` in the config, on the annotated stacks, in folders named by the swept
# parameters up to each stage (how many of nuclei3d.sweep.SWEPT each stage has).
SWEEP = f"{RESULTS}/sweep"
COMBINATIONS = sweep_combinations(config).to_dict("records")
SWEPT_UP_TO = {"resample": 1, "equalize": 2, "background": 3, "segment": 5}
SWEPT_UP_TO["validate"] = SWEPT_UP_TO["segment"]


def sweep_folder(combination, stage):
    parameters = [column for _, _, column in SWEPT][: SWEPT_UP_TO[stage]]
    return os.path.join(SWEEP, *(f"{p}~{combination[p]}" for p in parameters))


def sweep_values(combination):
    values = {}
    for section, key, column in SWEPT:
        values.setdefault(section, {})[key] = combination[column]
    return values


SWEEP_UNITS = {
    stage: [
        Unit(
            f"sweep{i}",
            ANNOTATED,
            folders={s: sweep_folder(combination, s) for s in SWEPT_UP_TO},
            values=sweep_values(combination),
            group=None,
        )
        for i, combination in enumerate(
            {sweep_folder(c, stage): c for c in COMBINATIONS}.values()
        )
    ]
    for stage in SWEPT_UP_TO
    if ANNOTATED
}
