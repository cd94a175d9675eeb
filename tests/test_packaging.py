"""The pins of the pip install and of the conda environment agree."""

import re

import yaml

from .conftest import REPO

# The workflow's own runner, not a package the jobs import.
RUNNER_ONLY = {"snakemake", "snakemake-executor-plugin-slurm"}


def pins(lines):
    return {
        line.strip()
        for line in lines
        if line.strip()
        and not line.lstrip().startswith("#")
        and re.match(r"[\w.\[\]-]+==", line.strip())
    }


def test_conda_environment_pins_what_requirements_txt_pins():
    required = pins((REPO / "requirements.txt").read_text().splitlines())
    env = yaml.safe_load((REPO / "envs/nuclei3d.yaml").read_text())
    (pip,) = [d["pip"] for d in env["dependencies"] if isinstance(d, dict)]
    assert pins(pip) == {p for p in required if p.split("==")[0] not in RUNNER_ONLY}
