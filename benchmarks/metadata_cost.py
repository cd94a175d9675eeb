"""What Snakemake's input checksums cost a run of small stacks.

    python benchmarks/metadata_cost.py [--stacks 256] [--batches 2] [--cores 2]
        [--shape 20 100 100] [--repeats 2] [--out FILE.json]

After each job, Snakemake records for every output the checksum of every input
of the job that is at most ``--max-checksum-file-size`` bytes (Snakemake's
default: 1,000,000), so a batch job of B stacks hashes about B × B files. The
workflow's profile (``profiles/default``) sets the limit to 0. Side by side, on
the same ``--stacks`` small stacks (every file under 1 MB), ``--repeats`` times
alternating:

- ``shipped``: the workflow as it ships;
- ``checksums``: the same with ``--max-checksum-file-size 1000000``.

Prints each run's wall time and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from benchmark import machine_info, make_stacks, median, workflow_run  # noqa: E402

RUNS = {"shipped": (), "checksums": ("--max-checksum-file-size", "1000000")}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stacks", type=int, default=256)
    parser.add_argument("--batches", type=int, default=2)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--shape", type=int, nargs=3, default=[20, 100, 100])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="metadata-cost-"))
    drawn, _ = make_stacks(root / "draw", min(16, args.stacks), args.shape)
    stacks = []
    for i in range(args.stacks):
        path = root / "stacks" / f"s{i:05d}" / "image.tif"
        path.parent.mkdir(parents=True)
        shutil.copyfile(drawn[i % len(drawn)], path)
        stacks.append(path)
    report = {
        "machine": machine_info(),
        "settings": vars(args) | {"out": str(args.out)},
    }
    walls = {name: [] for name in RUNS}
    for repeat in range(args.repeats):
        for name, extra in RUNS.items():
            result = workflow_run(
                stacks,
                root=root,
                cores=args.cores,
                kernel_cache=root / "kernels",
                device="",
                batches=args.batches,
                extra_args=extra,
                name=name,
            )
            report[f"{name}_{repeat}"] = result
            walls[name].append(result["wall_s"])
            print(f"{name} {repeat}: {result['wall_s']:.2f} s", flush=True)
    ratio = median(walls["shipped"]) / median(walls["checksums"])
    report["shipped_over_checksums"] = ratio
    print(
        f"\n{args.stacks} stacks in {args.batches} batches: shipped / with "
        f"checksums = {ratio:.2f}"
    )
    if args.out:
        args.out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
