"""What a run costs a SLURM cluster against the same run on the machine itself.

    python benchmarks/slurm_cost.py [--stacks 16] [--repeats 3] [--batches 2 4]
        [--group-components 1 2] [--out FILE.json]

Starts the single-node test cluster of ``tests/slurm_cluster.py`` (partitions
``cpu`` and ``gpu``, two stand-in GPUs: PoCL's ``pthread`` devices; the
machine's cores, each job bound to the one it got, as production clusters
bind them, so that a job's Snakemake sees one core), draws the
demo stacks once (full demo size, as ``config/config.yaml`` sets it), runs the
workflow once on one of them (so that both runs find the node's kernel cache and
OpenCL verdicts kept, as every run after a node's first does), then runs it on
all of them side by side, `--repeats` times in turn, a pair for each of
`--batches` (config ``batches`` of both runs; default: the config's) and
`--group-components` (batches in one SLURM job; default: the profile's):

- ``local``: ``snakemake --cores 2``;
- ``slurm``: ``snakemake --profile profiles/slurm`` as it ships, plus the flags
  this cluster needs (no accounting, no accounts, early status checks), plus
  ``--group-components stages=<n>`` where given.

Prints the allocation table of each pair: wall time, SLURM jobs, and allocated
core-seconds (each job's run time x its CPUs, summed), against the local run's
wall x cores; and the median of the pairs' ratios for each ``batches``.
Needs slurm-wlm and munge (``.ci/run`` installs them) and root or the right to
start the daemons.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
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


def workdir(path, samples, demo=None, batches=None):
    """A run folder with the repo's config (`device: pocl`, and `batches` where
    given) and the demo stacks."""
    (path / "config").mkdir(parents=True)
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config["device"] = "pocl"
    if batches is not None:
        config["batches"] = batches
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


def slurm_jobs(cluster, output):
    """The SLURM jobs of the run whose Snakemake printed `output`."""
    run_id = output.split("SLURM run ID: ")[1].split()[0]
    return [j for j in cluster.jobs() if j["JobName"] == run_id]


def run_pair(cluster, env, root, name, samples, demo, cores, batches, components):
    """One local run and one SLURM run of the same sheet with config `batches`,
    `components` batches in a SLURM job (None: the profile's)."""
    local = workdir(root / f"local-{name}", samples, demo, batches)
    local_wall, _ = timed([*SNAKEMAKE, "--cores", str(cores)], local, env)
    slurm = workdir(root / f"slurm-{name}", samples, demo, batches)
    profile = ["--profile", str(REPO / "profiles/slurm"), *SLURM_TEST_FLAGS]
    if components is not None:
        profile += ["--group-components", f"stages={components}"]
    slurm_wall, output = timed([*SNAKEMAKE, *profile], slurm, env)
    jobs = slurm_jobs(cluster, output)
    allocated = sum(seconds(j["RunTime"]) * int(j["NumCPUs"]) for j in jobs)
    local_core_s = local_wall * cores
    return {
        "batches": batches,
        "group_components": components,
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stacks", type=int, default=16)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--batches",
        type=int,
        nargs="+",
        help="config `batches` of both runs of a pair, each in turn (default: the "
        "config's)",
    )
    parser.add_argument(
        "--group-components",
        type=int,
        nargs="+",
        help="batches in one SLURM job, each in turn (default: the profile's)",
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    config_batches = yaml.safe_load((REPO / "config/config.yaml").read_text())[
        "batches"
    ]
    settings = [
        (batches, components)
        for batches in args.batches or [config_batches]
        for components in args.group_components or [None]
    ]
    samples = [f"stack{i:03d}" for i in range(args.stacks)]
    root = Path(tempfile.mkdtemp(prefix="slurm-cost-"))
    pairs = []
    with SlurmCluster(root / "cluster", bind_cpus=True) as cluster:
        env = dict(cluster.env)
        env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
        env["POCL_DEVICES"] = "pthread pthread"
        env.pop("CUDA_VISIBLE_DEVICES", None)
        env.pop("PYTHONPATH", None)
        cores = ["--cores", str(args.cores)]
        draw = workdir(root / "draw", samples)
        subprocess.run(
            [*SNAKEMAKE, *cores, "--until", "demo_stack"],
            cwd=draw,
            env=env,
            check=True,
            capture_output=True,
        )
        demo = draw / "resources"
        timed([*SNAKEMAKE, *cores], workdir(root / "warm-up", samples[:1], demo), env)
        for repeat in range(args.repeats):
            for batches, components in settings:
                pairs.append(
                    run_pair(
                        cluster,
                        env,
                        root,
                        f"{batches}-{components}-{repeat}",
                        samples,
                        demo,
                        args.cores,
                        batches,
                        components,
                    )
                )

    def setting(pair):
        return pair["batches"], pair["group_components"]

    def grouped(components):
        return "profile's" if components is None else components

    def label(batches, components):
        return f"batches {batches}, group-components {grouped(components)}"

    medians = {
        s: statistics.median(p["ratio"] for p in pairs if setting(p) == s)
        for s in settings
    }
    result = {
        "stacks": args.stacks,
        "pairs": pairs,
        "ratio_median": {label(*s): ratio for s, ratio in medians.items()},
    }
    print(f"{args.stacks} stacks")
    print(
        f"| batches | group-components | local `--cores {args.cores}`: wall (core-s) "
        "| `--profile profiles/slurm`: wall | SLURM jobs | allocated core-s | ratio |"
    )
    print("|---|---|---|---|---|---|---|")
    for pair in sorted(pairs, key=lambda pair: settings.index(setting(pair))):
        local, slurm = pair["local"], pair["slurm"]
        print(
            f"| {pair['batches']} | {grouped(pair['group_components'])} "
            f"| {local['wall_s']:.1f} s ({local['core_s']:.0f}) "
            f"| {slurm['wall_s']:.1f} s | {slurm['jobs']} "
            f"| {slurm['allocated_core_s']:.0f} | {pair['ratio']:.2f}× |"
        )
    for name, ratio in result["ratio_median"].items():
        print(f"{name}: median ratio {ratio:.2f}×")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
