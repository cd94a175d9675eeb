import logging

import yaml

from nuclei3d.device import DeviceChoice, log_choice
from nuclei3d.provenance import (
    devices_used,
    finish_record,
    parameter_set,
    start_record,
)

CONFIG = {
    "resample": {"target_voxel_size_um": 1.0},
    "segment": {"spot_sigma_um": 3.0},
    "overlay": {"every_n_slices": 20},
}


def test_parameter_set_changes_with_parameters_and_code_only():
    base = parameter_set(CONFIG, ["resample", "segment"], code={"segment": "a"})
    other_overlay = {**CONFIG, "overlay": {"every_n_slices": 5}}
    assert (
        parameter_set(other_overlay, ["resample", "segment"], {"segment": "a"}) == base
    )
    other_sigma = {**CONFIG, "segment": {"spot_sigma_um": 2.5}}
    assert parameter_set(other_sigma, ["resample", "segment"], {"segment": "a"}) != base
    assert parameter_set(CONFIG, ["resample", "segment"], {"segment": "b"}) != base


def test_a_record_has_start_end_and_the_devices_its_jobs_logged(tmp_path, caplog):
    logs = tmp_path / "logs" / "segment"
    logs.mkdir(parents=True)
    choice = DeviceChoice(
        1, "Xeon", "Intel(R) OpenCL", False, "fastest", "OpenCL 3.1 LINUX", "2026.22"
    )
    with caplog.at_level(logging.INFO, logger="nuclei3d.device"):
        log_choice(choice)
    for sample in ("a", "b"):
        (logs / f"{sample}.log").write_text(caplog.text)
    record_path = tmp_path / "provenance" / "run.yaml"
    start_record(record_path, config=CONFIG, basedir=tmp_path, parameters={"id": "x"})
    started = yaml.safe_load(record_path.read_text())
    assert started["status"] == "running" and started["config"] == CONFIG
    assert started["project"]["git_commit"] is None  # tmp_path is no git checkout
    record = finish_record(record_path, status="success", log_dir=tmp_path / "logs")
    assert record["status"] == "success" and record["ended"] >= record["started"]
    device = "Xeon on Intel(R) OpenCL [OpenCL 3.1 LINUX; driver 2026.22]"
    assert record["opencl_devices"] == {"segment": {device: 2}}
    assert yaml.safe_load(record_path.read_text()) == record


def test_logs_older_than_the_run_are_not_counted(tmp_path):
    old = tmp_path / "resample" / "a.log"
    old.parent.mkdir()
    old.write_text("OpenCL device 0: cpu on PoCL [3.1; driver 3.1] (first)\n")
    assert devices_used(tmp_path, since=0) == {
        "resample": {"cpu on PoCL [3.1; driver 3.1]": 1}
    }
    assert devices_used(tmp_path, since=old.stat().st_mtime + 10) == {}
