"""Throughput of one node: the workflow beside its floor, scikit-image and the seed.

    python benchmarks/node_throughput.py [--stacks 1024] [--small 64]
        [--processes 16] [--batches 16 32] [--small-batches 16 8]
        [--before DIR] [--out FILE.json]

Draws ``--small`` demo-like stacks (86×396×393 uint8, ``nuclei3d.demo``; not
timed) and copies them, under new names, up to ``--stacks`` files. Then, side by
side in one run on the same files:

- ``--small`` stacks: the seed notebook's loop in one process
  (``benchmarks/seed_loop.py``) and the workflow (``snakemake --cores P``,
  with each ``--small-batches`` value, by default the first of ``--batches``);
- ``--stacks`` stacks: the floor (the workflow's stage functions in P plain
  processes writing the same files: ``benchmarks/floor.py``, with each stage's
  median time), the same stages chained on the device writing only labels and
  statistics (as scikit-image's run: ``floor.py --labels-only``), the workflow with
  each ``--batches`` value, and scikit-image's same steps in ``Pool(P)``;
- with ``--before DIR`` (a checkout of another version of the workflow, e.g.
  ``git archive <commit> | tar -x -C DIR``): that version's workflow on both
  sets, with the first value of ``--small-batches`` and ``--batches``, right
  after this version's.

Every figure is the wall time of the whole command. The kernel cache starts
empty: the seed's first stack, alone in a process, fills it with the seed's
kernels (not timed), and the floor's first stacks with the rest; the workflow's
runs find it filled, as a second run on a node does.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from benchmark import (  # noqa: E402
    DEMO_SHAPE,
    REPO,
    cle_runs,
    floor_run,
    machine_info,
    make_stacks,
    seed_command,
    skimage_run,
    workflow_run,
)


def draw(args):
    folder, first, count = args
    return make_stacks(folder, count, DEMO_SHAPE, first_seed=first)[0]


def stacks_for(root, small, total, processes):
    """`small` drawn stacks, copied under new names up to `total` files."""
    per = -(-small // processes)
    with ProcessPoolExecutor(processes) as pool:
        parts = pool.map(
            draw,
            [
                (root / f"draw{i}", i * per, min(per, small - i * per))
                for i in range(processes)
                if i * per < small
            ],
        )
    drawn = [path for part in parts for path in part]
    paths = []
    for i in range(total):
        path = root / "stacks" / f"s{i:05d}" / "image.tif"
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(drawn[i % len(drawn)], path)
        paths.append(path)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stacks", type=int, default=1024)
    parser.add_argument("--small", type=int, default=64)
    parser.add_argument("--processes", type=int, default=16)
    parser.add_argument("--batches", type=int, nargs="+", default=[16])
    parser.add_argument("--small-batches", type=int, nargs="+")
    parser.add_argument("--device", default="")
    parser.add_argument("--skip-skimage", action="store_true")
    parser.add_argument("--before", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="node-throughput-"))
    cache = root / "kernels"
    report = {
        "machine": machine_info(),
        "settings": vars(args) | {"out": str(args.out)},
    }
    started = time.perf_counter()
    stacks = stacks_for(root, args.small, args.stacks, args.processes)
    report["drawing_s"] = time.perf_counter() - started
    small = stacks[: args.small]
    p = args.processes

    def note(name, value):
        report[name] = value
        wall = value.get("wall_s", value.get("process_wall_s"))
        print(
            f"{name}: {wall:.2f} s",
            flush=True,
        )

    note(
        f"seed_{args.small}",
        cle_runs(
            "seed",
            seed_command(),
            small,
            root=root,
            cache=cache,
            device=args.device,
            cold=True,
        ),
    )
    shared = {"root": root, "kernel_cache": cache, "device": args.device}
    for name, labels_only in (("floor", False), ("floor_labels", True)):
        note(
            f"{name}_{args.stacks}",
            floor_run(stacks, processes=p, labels_only=labels_only, **shared),
        )

    def workflow(name, paths, batches, snakefile=REPO / "Snakefile"):
        note(
            name,
            workflow_run(
                paths,
                cores=p,
                batches=batches,
                name=name,
                snakefile=snakefile,
                **shared,
            ),
        )

    before = args.before and args.before.resolve() / "Snakefile"
    small_batches = args.small_batches or args.batches[:1]
    workflow(f"workflow_{args.small}", small, small_batches[0])
    if before:
        workflow(f"before_{args.small}", small, small_batches[0], before)
    for batches in small_batches[1:]:
        workflow(f"workflow_{args.small}_batches_{batches}", small, batches)
    for batches in args.batches:
        workflow(f"workflow_{args.stacks}_batches_{batches}", stacks, batches)
        if before and batches == args.batches[0]:
            workflow(f"before_{args.stacks}_batches_{batches}", stacks, batches, before)
    if not args.skip_skimage:
        note(f"skimage_{args.stacks}", skimage_run(stacks, root=root, processes=p))
    seed = report[f"seed_{args.small}"]["process_wall_s"]
    floor = report[f"floor_{args.stacks}"]["wall_s"]
    stages = report[f"floor_{args.stacks}"]["median_stage_s"]
    print(
        "\nfloor, median s per stack and stage: "
        + ", ".join(f"{stage} {s:.4f}" for stage, s in stages.items())
        + f" (stack {report[f'floor_{args.stacks}']['median_stack_s']:.4f})"
    )
    labels_only = report[f"floor_labels_{args.stacks}"]["wall_s"]
    line = f"floor, labels + table only / floor = {labels_only / floor:.2f}"
    if not args.skip_skimage:
        skimage = report[f"skimage_{args.stacks}"]["process_wall_s"]
        line += f"; / scikit-image = {labels_only / skimage:.2f}"
    print(line)
    print(
        f"\n{args.small} stacks, batches {small_batches[0]}: workflow / seed loop = "
        f"{report[f'workflow_{args.small}']['wall_s'] / seed:.2f}"
    )
    for batches in small_batches[1:]:
        wall = report[f"workflow_{args.small}_batches_{batches}"]["wall_s"]
        print(
            f"{args.small} stacks, batches {batches}: workflow / seed loop = "
            f"{wall / seed:.2f}"
        )
    if before:
        b, n = args.batches[0], args.stacks
        for now, then in (
            (f"workflow_{args.small}", f"before_{args.small}"),
            (f"workflow_{n}_batches_{b}", f"before_{n}_batches_{b}"),
        ):
            ratio = report[now]["wall_s"] / report[then]["wall_s"]
            print(f"{now}: {ratio:.2f}x the --before version's")
    for name, run in report.items():
        if name.startswith(("workflow_", "before_")):
            t = run["timeline"]
            print(
                f"{name}: first stage job at {t['first_stage_job_start_s']:.1f} s, "
                f"last stage job ends {t['last_stage_job_end_s']:.1f} s, last job "
                f"{t['last_job_end_s']:.1f} s, wall {run['wall_s']:.1f} s; cores busy "
                f"with stage jobs {t['stage_jobs_busy']:.0%} in between; Snakemake's "
                f"own process {run['snakemake_cpu_s']:.1f} CPU-s"
            )
    for batches in args.batches:
        wall = report[f"workflow_{args.stacks}_batches_{batches}"]["wall_s"]
        line = (
            f"{args.stacks} stacks, batches {batches}: "
            f"workflow / floor = {wall / floor:.2f}"
        )
        if not args.skip_skimage:
            skimage = report[f"skimage_{args.stacks}"]["process_wall_s"]
            line += f", workflow / scikit-image = {wall / skimage:.2f}"
        print(line)
    report["benchmark_wall_s"] = time.perf_counter() - started
    if args.out:
        args.out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
