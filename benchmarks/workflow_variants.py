"""Time the whole workflow under several settings on one set of stacks.

    python benchmarks/workflow_variants.py --stacks 64 --cores 16 \\
        "stacks_per_job=1" "stacks_per_job=4" "stacks_per_job=4 --resources gpu=2"

A tuning aid for a node (which ``stacks_per_job`` and GPU-job concurrency are
fastest there), not the side-by-side benchmark (``benchmark.py``). Each variant is
``stacks_per_job=N`` followed by extra ``snakemake`` arguments. The stacks are
drawn once; a first, untimed run fills the kernel cache; then every variant runs
in a fresh results folder, and each is run ``--repeats`` times in turn.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchmark  # the side-by-side benchmark's helpers


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+")
    parser.add_argument("--stacks", type=int, default=64)
    parser.add_argument("--cores", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="")
    parser.add_argument(
        "--seed", action="store_true", help="also time the seed loop, for ratios"
    )
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--workdir",
        type=Path,
        help="folder for stacks and runs (default: a new temporary one); stacks "
        "already drawn there, e.g. by benchmark.py --workdir, are reused",
    )
    args = parser.parse_args(argv)

    root = args.workdir or Path(tempfile.mkdtemp(prefix="nuclei3d-variants-"))
    stacks, _ = benchmark.make_stacks(
        root / "stacks", args.stacks, benchmark.DEMO_SHAPE
    )
    cache = root / "cache"
    common = dict(root=root, cores=args.cores, kernel_cache=cache, device=args.device)
    benchmark.workflow_run(stacks, name="warm-up", **common)
    seed_wall = None
    if args.seed:
        seed = benchmark.cle_runs(
            "seed",
            benchmark.seed_command(),
            stacks,
            root=root,
            cache=cache,
            device=args.device,
            cold=False,
        )
        seed_wall = seed["process_wall_s"]
        print(
            f"{'seed notebook loop, 1 process':45} wall {seed_wall:6.2f} s", flush=True
        )
    rows = []
    for repeat in range(args.repeats):
        for index, variant in enumerate(args.variants):
            first, *extra = shlex.split(variant)
            stacks_per_job = int(first.removeprefix("stacks_per_job="))
            run = benchmark.workflow_run(
                stacks,
                stacks_per_job=stacks_per_job,
                extra_args=extra,
                name=f"variant-{index}",
                **common,
            )
            used = sum(v["total_used"] for v in run["device_s"].values())
            rows.append(
                {
                    "variant": variant,
                    "repeat": repeat,
                    "wall_s": run["wall_s"],
                    "jobs": run["jobs"],
                    "device_used_s": used,
                    "timeline_s": run["timeline_s"],
                    "median_job_s": run["median_job_s"],
                }
            )
            versus = f", {run['wall_s'] / seed_wall:.2f}x seed" if seed_wall else ""
            print(
                f"{variant:45} wall {run['wall_s']:6.2f} s, {run['jobs']:4d} jobs, "
                f"device used {used:6.2f} s{versus}",
                flush=True,
            )
    if args.out:
        report = {"seed_wall_s": seed_wall, "variants": rows}
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
