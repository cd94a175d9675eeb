"""What a run costs a SLURM cluster against the same run on the machine itself.

    python benchmarks/slurm_cost.py [--stacks 16] [--out FILE.json]

Starts the single-node test cluster of ``tests/slurm_cluster.py`` (partitions
``cpu`` and ``gpu``, two stand-in GPUs: PoCL's ``pthread`` devices), draws the
demo stacks once (full demo size, as ``config/config.yaml`` sets it), then runs
the workflow on them side by side:

- ``local``: ``snakemake --cores 2``;
- ``slurm``: ``snakemake --profile profiles/slurm`` as it ships, plus the flags
  this cluster needs (no accounting, no accounts, early status checks).

Prints the allocation table: wall time, SLURM jobs, and allocated core-seconds
(each job's run time x its CPUs, summed), against the local run's wall x cores.
Needs slurm-wlm and munge (``.ci/run`` installs them) and root or the right to
start the daemons.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.slurm_cluster import SlurmCluster  # noqa: E402
from tests.test_slurm import SLURM_TEST_FLAGS  # noqa: E402

SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile")]


def workdir(path, samples, demo=None):
    """A run folder with the repo's config (`device: pocl`) and the demo stacks."""
    (path / "config").mkdir(parents=True)
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config["device"] = "pocl"
    (path / "config/config.yaml").write_text(yaml.safe_dump(config))
    rows = ["sample\timage"] + [f"{s}\tresources/demo/{s}/image.tif" for s in samples]
    (path / "config/samples.tsv").write_text("\n".join(rows) + "\n")
    if demo is not None:
        shutil.copytree(demo, path / "resources")
    return path


def seconds(clock):
    """SLURM's RunTime ('[d-]hh:mm:ss') in seconds."""
    days, _, rest = clock.rpartition("-")
    h, m, s = map(int, rest.split(":"))
    return int(days or 0) * 86400 + h * 3600 + m * 60 + s


def timed(command, cwd, env):
    start = time.perf_counter()
    process = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{process.stderr[-5000:]}")
    return wall, process.stdout + process.stderr


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stacks", type=int, default=16)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    samples = [f"stack{i:03d}" for i in range(args.stacks)]
    root = Path(tempfile.mkdtemp(prefix="slurm-cost-"))
    with SlurmCluster(root / "cluster") as cluster:
        env = dict(cluster.env)
        env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
        env["POCL_DEVICES"] = "pthread pthread"
        env.pop("CUDA_VISIBLE_DEVICES", None)
        env.pop("PYTHONPATH", None)
        draw = workdir(root / "draw", samples)
        subprocess.run(
            [*SNAKEMAKE, "--cores", str(args.cores), "--until", "demo_stack"],
            cwd=draw,
            env=env,
            check=True,
            capture_output=True,
        )
        demo = draw / "resources"
        local = workdir(root / "local", samples, demo)
        local_wall, _ = timed([*SNAKEMAKE, "--cores", str(args.cores)], local, env)
        slurm = workdir(root / "slurm", samples, demo)
        slurm_wall, output = timed(
            [
                *SNAKEMAKE,
                "--profile",
                str(REPO / "profiles/slurm"),
                *SLURM_TEST_FLAGS,
            ],
            slurm,
            env,
        )
        run_id = output.split("SLURM run ID: ")[1].split()[0]
        jobs = [j for j in cluster.jobs() if j["JobName"] == run_id]
    allocated = sum(seconds(j["RunTime"]) * int(j["NumCPUs"]) for j in jobs)
    local_core_s = local_wall * args.cores
    result = {
        "stacks": args.stacks,
        "batches": yaml.safe_load((REPO / "config/config.yaml").read_text())["batches"],
        "local": {"wall_s": local_wall, "core_s": local_core_s},
        "slurm": {
            "wall_s": slurm_wall,
            "jobs": len(jobs),
            "allocated_core_s": allocated,
            "per_job": [
                {
                    "rule": j["Comment"],
                    "run_s": seconds(j["RunTime"]),
                    "cpus": j["NumCPUs"],
                }
                for j in jobs
            ],
        },
        "ratio": allocated / local_core_s,
    }
    print(f"{args.stacks} stacks, batches: {result['batches']}")
    print("| run | wall | SLURM jobs | allocated core-seconds |")
    print("|---|---|---|---|")
    print(
        f"| local `--cores {args.cores}` | {local_wall:.1f} s | – "
        f"| ({local_core_s:.0f}) |"
    )
    print(
        f"| `--profile profiles/slurm` | {slurm_wall:.1f} s | {len(jobs)} | "
        f"{allocated:.0f} ({result['ratio']:.2f}× local) |"
    )
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
