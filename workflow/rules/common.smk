# Sample sheet, config validation, paths and input functions shared by all rules.
import os
import re
import sys
from pathlib import Path

import pandas as pd
from jsonschema import ValidationError
from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import Paramspace, validate

# The stage library lives in src/. This process imports it for code fingerprints;
# jobs (scripts, in conda envs, on cluster nodes, which parse this file again)
# inherit it through PYTHONPATH, whether or not it is pip-installed.
LIBRARY = str(Path(workflow.basedir) / "src")
sys.path.insert(0, LIBRARY)
os.environ.update(
    PYTHONPATH=os.pathsep.join([LIBRARY, *filter(None, [os.getenv("PYTHONPATH")])])
)

from nuclei3d.fingerprint import code_fingerprint
from nuclei3d.sweep import SWEPT, sweep_combinations

validate(config, schema="../schemas/config.schema.yaml")


def load_samples(path):
    """Read and validate the sample sheet; one row per sample, indexed by name."""
    # Only empty cells are missing: a sample may be called "NA" or "nan".
    sheet = pd.read_csv(
        path, sep="\t", dtype=str, comment="#", keep_default_na=False, na_values=[""]
    ).dropna(how="all")
    for column in ("voxel_size_z", "voxel_size_y", "voxel_size_x", "channel"):
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
    return sheet.set_index("sample", drop=False)


samples = load_samples(config["samples"])
# Stacks with ground truth: validated, and the ones a parameter sweep scores.
ANNOTATED = (
    samples.index[samples["ground_truth"].notna()].tolist()
    if "ground_truth" in samples
    else []
)
RESULTS = config["results"]
STAGE_RESOURCES = {"gpu": 1}


wildcard_constraints:
    sample=r"[A-Za-z0-9][A-Za-z0-9._-]*",


def result(name):
    """Path of a per-stack output: {results}/{sample}/<name>."""
    return f"{RESULTS}/{{sample}}/{name}"


def log_path(stage):
    return f"{RESULTS}/logs/{stage}/{{sample}}.log"


def benchmark_path(stage):
    return f"{RESULTS}/benchmarks/{stage}/{{sample}}.tsv"


def image_path(wildcards):
    return samples.at[wildcards.sample, "image"]


def image_of(wildcards):
    """The stack as the resample job's input; none where the file is missing.

    A missing file must fail its own stack's job (with a message naming it), not
    the whole run, so it is not declared as an input. Demo stacks are inputs even
    before they exist: rule demo_stack makes them.
    """
    path = image_path(wildcards)
    if os.path.exists(path) or path.startswith("resources/demo/"):
        return path
    return []


def ground_truth_of(wildcards):
    return samples.at[wildcards.sample, "ground_truth"]


def channel_of(wildcards):
    """0-based channel of a multichannel file (sheet column `channel`), or None."""
    value = samples.loc[wildcards.sample].get("channel")
    return None if value is None or pd.isna(value) else int(value)


def sheet_voxel_size(wildcards):
    """Voxel size (z, y, x) from the sheet, or None where any of the three is empty."""
    row = samples.loc[wildcards.sample]
    values = [row.get(f"voxel_size_{axis}") for axis in "zyx"]
    if any(v is None or pd.isna(v) for v in values):
        return None
    return [float(v) for v in values]


# Parameter sweep (rules in sweep.smk): the combinations and, per stage, the
# Paramspace of the parameters up to that stage, which names its folders.
SWEEP = f"{RESULTS}/sweep"
COMBINATIONS = sweep_combinations(config)
SWEPT_COLUMNS = [column for _, _, column in SWEPT]


def stage_space(stages):
    """Paramspace of the first `stages` swept parameters."""
    columns = SWEPT_COLUMNS[:stages]
    return Paramspace(COMBINATIONS[columns].drop_duplicates())


RESAMPLED, EQUALIZED, BACKGROUND = stage_space(1), stage_space(2), stage_space(3)
LABELLED = stage_space(5)


def swept(space, name):
    return f"{SWEEP}/{space.wildcard_pattern}/{{sample}}/{name}"


def sweep_log(space, stage):
    return f"{SWEEP}/{space.wildcard_pattern}/logs/{stage}/{{sample}}.log"
