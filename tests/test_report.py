"""`snakemake --report` builds one HTML page that renders in headless Chromium."""

import re
import shutil
import subprocess

import pytest

from .conftest import in_ci, make_workdir, run_snakemake

pytestmark = pytest.mark.workflow

CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def visible_text(dom):
    body = re.sub(r"<script.*?</script>", " ", dom, flags=re.DOTALL)
    return " ".join(re.sub(r"<[^>]+>", " ", body).split())


def rendered_text(html, profile):
    """Visible text of `html` after its JavaScript ran in headless Chromium."""
    if CHROMIUM is None:
        if in_ci():
            pytest.fail("chromium is missing: .ci/run installs Debian's chromium")
        pytest.skip("Debian's chromium is not installed")
    dom = subprocess.run(
        [
            CHROMIUM,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            html.as_uri(),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return visible_text(dom)


def test_report_has_every_section(tmp_path):
    workdir = make_workdir(
        tmp_path / "run",
        ("stack_a", "stack_b"),
        sweep={"segment": {"spot_sigma_um": [2.0, 3.0], "outline_sigma_um": [1.0]}},
    )
    run_snakemake(workdir, "all", "sweep")
    report = workdir / "report.html"
    run_snakemake(workdir, "--report", str(report), "all", "sweep")
    text = rendered_text(report, tmp_path / "chromium")
    static = visible_text(report.read_text())
    for section in ("Overlays", "Statistics", "Validation", "Parameter sweep"):
        assert section in text, section
        assert section not in static  # rendered by the page's script


def test_a_report_of_a_run_that_lost_stacks_counts_them(tmp_path):
    """`snakemake --report report.html completed` after a run that lost a stack:
    the completed stacks, and the count and reasons of the lost ones."""
    workdir = make_workdir(tmp_path / "run", ("good",))
    with open(workdir / "config/samples.tsv", "a") as sheet:
        sheet.write(f"lost\t{tmp_path / 'no_such_file.tif'}\t\n")
    assert run_snakemake(workdir, check=False).returncode != 0
    # A run of the rest succeeds, and the lost stack stays listed.
    run_snakemake(workdir, "completed")
    failed = (workdir / "results/failed_stacks.tsv").read_text().splitlines()
    assert [line.split("\t")[0] for line in failed] == ["sample", "lost"]
    report = workdir / "report.html"
    run_snakemake(workdir, "--report", str(report), "completed")
    text = rendered_text(report, tmp_path / "chromium")
    assert "Failed stacks" in text
    assert "1 of 2 stacks failed" in text
    assert "lost (resample):" in text and "no_such_file.tif: file not found" in text
    # the completed stack's pictures are in the page's data
    assert "results/good/overlay/contact_sheet.png" in report.read_text()
