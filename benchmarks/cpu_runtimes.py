"""The CPU's OpenCL runtimes side by side, against scikit-image, in one run.

    python benchmarks/cpu_runtimes.py --stacks 32 --processes 2 --out FILE \\
        [--runtime NAME=PATTERN ...] [--rounds 2]

For each runtime (a config ``device`` pattern; default: Intel's CPU runtime and
PoCL, the best PoCL platform where there are two), on the same demo-like
stacks: the library in one process (``benchmark.py``'s library worker, per-stack
medians) and the whole workflow (``snakemake --cores P``, end to end), each with
its own warm kernel cache; plus scikit-image with P processes. The rounds run
the variants in turn, so that a slow spell of the machine hits all of them; the
first round also fills the kernel caches, so the report takes the last round and
the ratios to scikit-image of every round.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchmark  # the side-by-side benchmark's helpers

RUNTIMES = ("intel=Intel(R) OpenCL", "pocl=pocl")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stacks", type=int, default=32)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--runtime", action="append", metavar="NAME=PATTERN")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)
    runtimes = dict(item.split("=", 1) for item in args.runtime or RUNTIMES)
    with tempfile.TemporaryDirectory() as scratch:
        root = args.workdir or Path(scratch)
        stacks, _ = benchmark.make_stacks(
            root / "stacks", args.stacks, benchmark.DEMO_SHAPE
        )
        rounds = []
        for round_number in range(args.rounds):
            row = {}
            for name, pattern in runtimes.items():
                cache = root / "caches" / name
                benchmark.progress(f"round {round_number}: library on {name}")
                row[f"library-{name}"] = benchmark.cle_runs(
                    f"library-{name}",
                    benchmark.library_command(),
                    stacks,
                    root=root,
                    cache=cache,
                    device=pattern,
                    cold=False,
                )
                benchmark.progress(f"round {round_number}: workflow on {name}")
                row[f"workflow-{name}"] = benchmark.workflow_run(
                    stacks,
                    root=root,
                    cores=args.processes,
                    kernel_cache=cache,
                    device=pattern,
                    name=f"workflow-{name}",
                )
            benchmark.progress(f"round {round_number}: scikit-image")
            row["skimage"] = benchmark.skimage_run(
                stacks, root=root, processes=args.processes
            )
            rounds.append(row)
    report = {
        "machine": benchmark.machine_info(),
        "stacks": args.stacks,
        "processes": args.processes,
        "runtimes": runtimes,
        "rounds": rounds,
    }
    print_report(report)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1, default=str))


def print_report(report):
    last = report["rounds"][-1]
    print(
        f"\n{report['stacks']} stacks, {report['processes']} processes; "
        f"last of {len(report['rounds'])} rounds (ratios: every round)"
    )
    print(f"  {'run':22}{'device':58}{'wall s':>8}{'per stack ms':>14}  vs skimage")

    def wall(result):
        return result.get("wall_s", result.get("process_wall_s"))

    for name, result in last.items():
        device = result.get("device") or result.get("device_log_line") or "-"
        per_stack = result.get("median_stack_s")
        per_stack = "-" if per_stack is None else f"{1000 * per_stack:.0f}"
        ratios = ", ".join(
            f"{wall(row[name]) / wall(row['skimage']):.2f}x" for row in report["rounds"]
        )
        print(
            f"  {name:22}{str(device)[:56]:58}{wall(result):8.1f}{per_stack:>14}  "
            f"{ratios}"
        )
    nuclei = {name: sum(result["nuclei"]) for name, result in last.items()}
    print(f"  nuclei found, all stacks: {nuclei}")


if __name__ == "__main__":
    main()
