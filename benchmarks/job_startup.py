"""What each Snakemake of a SLURM job pays to read the workflow, at sheet scale.

    python benchmarks/job_startup.py [--stacks 10000] [--batches 100]
        [--repeats 2] [--before DIR] [--out FILE.json]

A SLURM job of a batch runs two Snakemake processes (the job's, with the
``slurm-jobstep`` executor, and the job step's, which runs the stages): each
reads the whole workflow, every batch's rules included, before it plans the
batch's six stage jobs. This writes a sheet of ``--stacks`` rows (hard links to
one small TIFF; the sheet's layouts are read once, not timed, as a run's first
planning keeps them), then times, ``--repeats`` times in turn, what the job
step's Snakemake does up to its first job: ``snakemake --mode remote
--target-jobs <batch0's stage jobs> --dry-run``, for this workflow and, with
``--before DIR``, for another version of it (a tree with its Snakefile) side by
side. Prints the seconds of each and their medians.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import yaml

REPO = Path(__file__).resolve().parents[1]
STAGES = ("resample", "equalize", "background", "segment", "overlay", "measure")


def make_workdir(root, stacks, batches):
    """A run folder: a sheet of `stacks` hard links to one 8×16×16 TIFF."""
    (root / "config").mkdir(parents=True)
    (root / "data").mkdir()
    one = root / "one.tif"
    tifffile.imwrite(
        one,
        np.zeros((8, 16, 16), np.uint8),
        imagej=True,
        resolution=(5.0, 5.0),
        metadata={"spacing": 1.0, "unit": "um"},
    )
    rows = ["sample\timage"]
    for i in range(stacks):
        os.link(one, root / "data" / f"s{i:05d}.tif")
        rows.append(f"s{i:05d}\tdata/s{i:05d}.tif")
    (root / "config/samples.tsv").write_text("\n".join(rows) + "\n")
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config.update(batches=batches, device="pocl")
    (root / "config/config.yaml").write_text(yaml.safe_dump(config))
    return root


def snakemake(tree, workdir, *args):
    """Seconds and output of a Snakemake call of the workflow in `tree`."""
    command = [sys.executable, "-m", "snakemake", "-s", str(Path(tree) / "Snakefile")]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    begin = time.perf_counter()
    process = subprocess.run(
        [*command, *args], cwd=workdir, env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - begin
    output = process.stdout + process.stderr
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{output[-3000:]}")
    return seconds, output


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stacks", type=int, default=10000)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--before", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="job-startup-"))
    workdir = make_workdir(root / "run", args.stacks, args.batches)
    trees = {"workflow": REPO}
    if args.before:
        trees["before"] = args.before.resolve()
    # The first batch's stage rules (`<stage>_<batch>`), as the workflow lists them.
    _, rules = snakemake(REPO, workdir, "--list-rules")  # reads and keeps the layouts
    batch = sorted(re.findall(r"^resample_(batch\w+)", rules, re.MULTILINE))[0]
    jobs = [f"{stage}_{batch}" for stage in STAGES]
    step = [
        "--target-jobs",
        *(f"{job}:" for job in jobs),
        "--allowed-rules",
        *jobs,
        "--mode",
        "remote",
        "--cores",
        "1",
        "--force",
        "--nolock",
        "--no-hooks",
        "--dry-run",
    ]
    seconds = {name: [] for name in trees}
    for _ in range(args.repeats):
        for name, tree in trees.items():
            took, output = snakemake(tree, workdir, *step)
            assert f"rule {jobs[-1]}:" in output, output[-3000:]
            seconds[name].append(took)
    result = {
        "stacks": args.stacks,
        "batches": args.batches,
        "jobs": jobs,
        "seconds": seconds,
        "median_s": {name: statistics.median(s) for name, s in seconds.items()},
    }
    print(f"{args.stacks} stacks in {args.batches} batches: one job step's Snakemake")
    for name, values in seconds.items():
        runs = ", ".join(f"{s:.2f}" for s in values)
        print(f"  {name}: {runs} s (median {result['median_s'][name]:.2f} s)")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
