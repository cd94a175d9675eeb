"""nuclei3d.job without Snakemake: a batch's stacks, failures, logs; a stage job's
process imports only what its stage uses."""

import logging
import subprocess
import sys

import pytest
from snakemake.iocontainers import Namedlist

from nuclei3d.job import StageError, job_stacks, run_stacks

from .conftest import REPO


def write_name(stack, log):
    if stack.name == "bad":
        raise ValueError(f"{stack.inputs['raw']}: not a stack")
    log.info("writing %s", stack.name)
    with open(stack.output, "w") as handle:
        handle.write(stack.inputs["raw"])


def stacks_of(tmp_path, samples, **inputs):
    return job_stacks(
        Namedlist(fromdict=inputs),
        Namedlist([str(tmp_path / f"{s}.txt") for s in samples]),
        [{"sample": s} for s in samples],
    )


def test_every_stack_of_a_batch_runs_and_failures_are_named(tmp_path, caplog):
    samples = ["a", "bad", "c"]
    stacks = stacks_of(tmp_path, samples, raw=[f"{s}.tif" for s in samples])
    log = logging.getLogger("nuclei3d.test")
    with (
        caplog.at_level(logging.INFO),
        pytest.raises(StageError, match=r"1 of 3 stack\(s\) failed:\nbad: bad.tif"),
    ):
        run_stacks(write_name, stacks, log)
    assert (tmp_path / "a.txt").read_text() == "a.tif"
    assert (tmp_path / "c.txt").read_text() == "c.tif"  # after the failure
    assert not (tmp_path / "bad.txt").exists()
    assert "writing a" in caplog.text and "writing c" in caplog.text
    assert "stack bad failed: bad.tif: not a stack" in caplog.text
    assert "Traceback" in caplog.text


def test_a_single_file_input_belongs_to_the_one_stack(tmp_path):
    (stack,) = stacks_of(tmp_path, ["a"], raw="only.tif")
    assert stack.inputs == {"raw": "only.tif"}
    assert stack.output == str(tmp_path / "a.txt")


def test_the_first_stack_runs_under_the_build_lock(tmp_path):
    held = []

    class Lock:
        def __enter__(self):
            held.append(True)

        def __exit__(self, *exc):
            held.append(False)

    seen = []
    stacks = stacks_of(tmp_path, ["a", "b"], raw=["a.tif", "b.tif"])
    run_stacks(
        lambda stack, log: seen.append((stack.name, held[-1] if held else None)),
        stacks,
        logging.getLogger("test"),
        build_lock=Lock(),
    )
    assert seen == [("a", True), ("b", False)]


HEAVY = {"pandas", "matplotlib", "pyclesperanto_prototype", "bioio", "scipy", "zarr"}


@pytest.mark.parametrize(
    ("stage", "allowed"),
    [
        ("resample", set()),
        ("segment", set()),
        ("overlay", set()),
        ("measure", {"pandas"}),
    ],
)
def test_a_stage_module_imports_only_what_it_uses(stage, allowed):
    """Importing a stage imports none of the heavy packages it does not need
    before its first stack (each function imports its own)."""
    code = (
        "import importlib, sys; importlib.import_module('nuclei3d.job');"
        f"importlib.import_module('nuclei3d.{stage}');"
        "print(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    )
    modules = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert HEAVY & set(modules) == allowed
