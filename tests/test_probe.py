"""The probe on real OpenCL runtimes, with runtimes broken for real.

Two ways to break a runtime's compiler, as a broken install would:
``POCL_EXTRA_BUILD_FLAGS=-no-such-flag`` makes every PoCL platform refuse to build
(INVALID_BUILD_OPTIONS), and ``CL_CONFIG_LLVM_OPTIONS=-no-such-llvm-option``
makes Intel's CPU runtime end the building process. CI has pyopencl's PoCL,
Debian's PoCL and Intel's runtime (.ci/run, requirements.txt), so both leave a
working device behind, and both together leave none.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nuclei3d.probe import INTEL_CPU_RUNTIME, register_runtimes

from .conftest import (
    INTEL_ICD,
    REPO,
    in_ci,
    make_workdir,
    run_snakemake,
    stack_log,
)

BREAK_POCL = {"POCL_EXTRA_BUILD_FLAGS": "-no-such-flag"}
BREAK_INTEL = {"CL_CONFIG_LLVM_OPTIONS": "-no-such-llvm-option"}
INTEL_LINE = r"Intel\(R\) OpenCL \(OpenCL [\d.]+ LINUX\)"
# pyopencl's PoCL on a CPU newer than its LLVM 14 knows: a device that fails.
LLVM_14_POCL = r"Portable Computing Language \(.*LLVM 14\.[\d.]+.*\)"
UNKNOWN_CPU = r"error: unknown target CPU 'generic'$"


def probe(tmp_path, *args, **env):
    """`python -m nuclei3d.probe` with its verdicts in `tmp_path`."""
    environment = {**os.environ, **env}
    environment.pop("CUDA_VISIBLE_DEVICES", None)
    return subprocess.run(
        [sys.executable, "-m", "nuclei3d.probe", "--cache-dir", str(tmp_path), *args],
        env=environment,
        cwd=REPO,
        capture_output=True,
        text=True,
    )


def test_requirements_pin_the_runtime_the_message_offers():
    pins = (REPO / "requirements.txt").read_text()
    for pin in INTEL_CPU_RUNTIME.split():
        assert re.search(rf"^{re.escape(pin)};", pins, re.MULTILINE), pin


def test_register_runtimes_adds_the_environments_to_the_systems(
    tmp_path, monkeypatch, intel_runtime
):
    system = tmp_path / "vendors"
    system.mkdir()
    (system / "gpu.icd").write_text("/opt/gpu/libgpu-opencl.so\n")
    monkeypatch.setenv("OCL_ICD_VENDORS", str(system))
    added = register_runtimes(registry=tmp_path / "registry")
    assert added == [str(intel_runtime)]
    folder = Path(os.environ["OCL_ICD_VENDORS"])
    assert folder.parent == tmp_path / "registry"
    assert sorted(f.name for f in folder.iterdir()) == [
        "gpu.icd",
        INTEL_ICD,
    ]
    assert (folder / INTEL_ICD).read_text() == f"{intel_runtime}\n"
    # A child process of a registered one changes nothing.
    assert register_runtimes(registry=tmp_path / "registry") == []
    assert os.environ["OCL_ICD_VENDORS"] == str(folder)


def test_register_runtimes_leaves_an_environment_without_runtimes_alone(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("OCL_ICD_VENDORS", str(tmp_path))
    assert register_runtimes(prefix=tmp_path, registry=tmp_path / "registry") == []
    assert os.environ["OCL_ICD_VENDORS"] == str(tmp_path)


def test_every_runtime_of_this_machine_works(tmp_path, intel_runtime):
    """Each one, but pyopencl's PoCL on a CPU newer than its LLVM 14 knows: that
    one must fail the probe with LLVM's error, and the run go on without it."""
    listing = probe(tmp_path)
    assert listing.returncode == 0, listing.stderr
    failed = [line for line in listing.stdout.splitlines() if "FAILED" in line]
    too_new = LLVM_14_POCL + ": FAILED: " + UNKNOWN_CPU
    assert all(re.search(too_new, line) for line in failed), failed
    assert re.search(INTEL_LINE + ": works", listing.stdout)
    # The fastest CPU runtime is Intel's (benchmarks/RESULTS.md).
    assert re.search(r"runs on device \d+: .* on Intel\(R\) OpenCL", listing.stdout)


def test_a_pocl_that_cannot_build_is_skipped_with_its_error(tmp_path, intel_runtime):
    listing = probe(tmp_path, **BREAK_POCL)
    assert listing.returncode == 0, listing.stderr
    pocl = re.findall(r"on Portable Computing Language \(.*\): (.*)", listing.stdout)
    assert pocl and all(
        verdict == "FAILED: Invalid build option: -no-such-flag" for verdict in pocl
    ), listing.stdout
    if in_ci():
        assert len(pocl) >= 2  # pyopencl's and Debian's
    assert re.search(r"runs on device \d+: .* on Intel\(R\) OpenCL", listing.stdout)


def test_a_runtime_that_ends_the_building_process_is_skipped(tmp_path, intel_runtime):
    """Intel's runtime exits the process that builds: the probe's child dies,
    the verdict says so with the runtime's own first line, the rest are probed."""
    listing = probe(tmp_path, **BREAK_INTEL)
    assert listing.returncode == 0, listing.stderr
    assert re.search(
        INTEL_LINE + r": FAILED: the probe process died \(exit status 1\): "
        r"OclBackend: Unknown command line argument '-no-such-llvm-option'",
        listing.stdout,
    ), listing.stdout
    assert re.search(
        r"runs on device \d+: .* on Portable Computing Language", listing.stdout
    )


def test_no_working_device_gives_one_message_with_the_fixes(tmp_path, intel_runtime):
    listing = probe(tmp_path, **BREAK_POCL, **BREAK_INTEL)
    assert listing.returncode == 1
    message = listing.stderr
    assert message.startswith("No working OpenCL device on ")
    assert "Traceback" not in message
    assert re.search(INTEL_LINE + r": the probe process died", message)
    assert "Invalid build option: -no-such-flag" in message
    for fix in ("nvidia.icd", INTEL_CPU_RUNTIME, "apt install pocl-opencl-icd"):
        assert fix in message


def test_verdicts_are_kept_per_driver_and_build_settings(tmp_path, intel_runtime):
    assert probe(tmp_path).returncode == 0
    verdicts_file = tmp_path / "opencl-devices.json"
    verdicts = json.loads(verdicts_file.read_text())
    assert verdicts and all(v["error"] is None for v in verdicts.values())
    # A kept verdict is used as it is: no second probe.
    verdicts = {key: {**v, "error": "kept verdict"} for key, v in verdicts.items()}
    verdicts_file.write_text(json.dumps(verdicts))
    kept = probe(tmp_path)
    assert kept.returncode == 1 and "kept verdict" in kept.stderr
    assert "works" in probe(tmp_path, "--refresh").stdout
    # Other build settings are another key: probed anew, and kept beside.
    count = len(json.loads(verdicts_file.read_text()))
    assert probe(tmp_path, **BREAK_POCL).returncode == 0
    assert len(json.loads(verdicts_file.read_text())) > count


@pytest.mark.workflow
@pytest.mark.parametrize(
    ("broken", "failed", "error", "used"),
    [
        # Intel's runtime ranks first and fails: every job falls back to PoCL.
        (
            BREAK_INTEL,
            ".* on " + INTEL_LINE,
            r"the probe process died .*Unknown command line argument "
            r"'-no-such-llvm-option'",
            "Portable Computing Language",
        ),
        # Every PoCL fails, as pyopencl's PoCL fails on CPUs LLVM 14 cannot name.
        (
            BREAK_POCL,
            r".* on Portable Computing Language \(.*PoCL.*\)",
            "Invalid build option: -no-such-flag",
            r"Intel\(R\) OpenCL",
        ),
    ],
    ids=["intel-fails", "pocl-fails"],
)
def test_jobs_skip_a_device_that_fails_with_one_warning_each(
    tmp_path, intel_runtime, broken, failed, error, used
):
    """Each job's log names each failed device once (platform, version, first
    error line) and the job runs on a working one."""
    workdir = make_workdir(tmp_path, ("s1",))
    run_snakemake(workdir, "background", env={**os.environ, **broken})
    for stage in ("resample", "equalize", "background"):
        log = stack_log(workdir / "results", stage, "s1")
        warnings = re.findall(r"WARNING .*skipping OpenCL device (.*)", log)
        assert warnings, log
        assert len(warnings) == len(set(warnings)), log
        too_new = LLVM_14_POCL + ": it failed a test build: " + UNKNOWN_CPU
        for warning in warnings:
            assert re.match(
                failed + r": it failed a test build: " + error, warning
            ) or re.search(too_new, warning), warning
        assert re.search(r"OpenCL device \d+: .* on " + used, log), log


@pytest.mark.workflow
def test_a_run_without_a_working_device_stops_before_any_job(tmp_path, intel_runtime):
    workdir = make_workdir(tmp_path, ("s1",))
    process = run_snakemake(
        workdir, check=False, env={**os.environ, **BREAK_POCL, **BREAK_INTEL}
    )
    assert process.returncode == 1
    output = process.stdout + process.stderr
    assert output.count("No working OpenCL device on ") == 1
    assert "Traceback" not in output
    assert "apt install pocl-opencl-icd" in output
    assert not (workdir / "results").exists()
    assert not (workdir / "resources").exists()
