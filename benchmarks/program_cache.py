"""What pyopencl's own binary cache saves a stage process on a CPU runtime.

    python benchmarks/program_cache.py [--device Intel] [--repeats 5]
        [--before DIR] [--out FILE.json]

pyopencl keeps program binaries itself only for runtimes that keep none (of the
CPU runtimes here: Intel's); the workflow turns that cache off
(:mod:`nuclei3d.kernel_cache`). This times, in fresh processes, in turn, the
first run of the whole pipeline (every stage's programs built) on a small stack
and a second run (nothing built), with pyopencl's cache on (after one warm-up
process fills it) and off, and prints the medians. The difference of the first
runs is what a stage process pays once for building from source.

With ``--before DIR`` (a checkout of a version that kept pyopencl's cache on),
it also times the demo run (``snakemake --cores 2`` with the config as it ships:
three seed-sized stacks, drawn once before, not timed) of this version and of
that one, in turn, ``--repeats`` times, both with the node's kernel cache warm.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

ONE_PROCESS = """
import json, os, sys, time
from nuclei3d.kernel_cache import use_kernel_cache
use_kernel_cache(sys.argv[1])
if sys.argv[3] == "on":
    del os.environ["PYOPENCL_NO_CACHE"]
from nuclei3d.demo import make_demo_stack
from nuclei3d.device import select_device
from nuclei3d.pipeline import run_pipeline
chosen = select_device(sys.argv[2])
image, _ = make_demo_stack(shape=(30, 150, 150), n_nuclei=8, seed=3)
times = []
for _ in range(2):
    started = time.perf_counter()
    run_pipeline(image, (1.0, 0.202, 0.202))
    times.append(time.perf_counter() - started)
print(json.dumps({"device": f"{chosen.name} on {chosen.platform}", "s": times}))
"""


def one_process(cache, device, pyopencl_cache):
    """(device, [first run s, second run s]) of a fresh process."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    done = subprocess.run(
        [sys.executable, "-c", ONE_PROCESS, str(cache), device, pyopencl_cache],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return answer["device"], answer["s"]


def demo_run(tree, root, name, resources):
    """Seconds of the demo run of the workflow in `tree`, in a new folder."""
    folder = root / name
    (folder / "config").mkdir(parents=True)
    for file in ("config.yaml", "samples.tsv"):
        shutil.copy(Path(tree) / "config" / file, folder / "config" / file)
    if resources is not None:
        shutil.copytree(resources, folder / "resources")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    command = [sys.executable, "-m", "snakemake", "-s", str(Path(tree) / "Snakefile")]
    started = time.perf_counter()
    subprocess.run(
        [*command, "--cores", "2"], cwd=folder, env=env, capture_output=True, check=True
    )
    return time.perf_counter() - started, folder / "resources"


def demo_runs(before, repeats):
    """{"this version": [s, ...], "before": [s, ...]} of the demo run, in turn."""
    trees = {"this version": REPO, "before": before}
    times = {name: [] for name in trees}
    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        # Draws the stacks; with the other version's first run, fills the caches.
        _, resources = demo_run(REPO, root, "draw", None)
        demo_run(before, root, "warm-before", resources)
        for i in range(repeats):
            for k, (name, tree) in enumerate(trees.items()):
                seconds, _ = demo_run(tree, root, f"run-{i}-{k}", resources)
                times[name].append(round(seconds, 2))
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="Intel", help="config `device` pattern")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--before", type=Path, help="another version's checkout")
    parser.add_argument("--out", help="write the figures here (JSON)")
    args = parser.parse_args()
    pipeline_s = {"on": [], "off": []}
    with tempfile.TemporaryDirectory() as cache:
        device, _ = one_process(cache, args.device, "on")  # fills the cache
        # The drivers' own caches (PoCL's) are warm for both from here on.
        for _ in range(args.repeats):
            for setting, times in pipeline_s.items():
                times.append(one_process(cache, args.device, setting)[1])
    result = {"device": device, "repeats": args.repeats}
    for setting, times in pipeline_s.items():
        first = statistics.median(t[0] for t in times)
        second = statistics.median(t[1] for t in times)
        result[f"pyopencl cache {setting}"] = {
            "first_run_s": [round(t[0], 3) for t in times],
            "median_first_run_s": round(first, 3),
            "median_second_run_s": round(second, 3),
        }
        print(
            f"pyopencl cache {setting:3}: first pipeline run {first:.2f} s "
            f"(median of {args.repeats}), second {second:.3f} s"
        )
    extra = (
        result["pyopencl cache off"]["median_first_run_s"]
        - result["pyopencl cache on"]["median_first_run_s"]
    )
    result["build_from_source_s"] = round(extra, 3)
    print(f"{device}: building from source costs a process {extra:.2f} s once")
    if args.before:
        demo = demo_runs(args.before, args.repeats)
        result["demo_run_s"] = demo
        for name, times in demo.items():
            listed = ", ".join(f"{t:.2f}" for t in times)
            median = statistics.median(times)
            print(f"demo run, {name}: {listed} s (median {median:.2f} s)")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
