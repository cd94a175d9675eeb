"""What pyopencl's own binary cache saves a stage process on a CPU runtime.

    python benchmarks/program_cache.py [--device Intel] [--repeats 5]
        [--out FILE.json]

pyopencl keeps program binaries itself only for runtimes that keep none (of the
CPU runtimes here: Intel's); the workflow turns that cache off
(:mod:`nuclei3d.kernel_cache`). This times, in fresh processes, in turn, the
first run of the whole pipeline (every stage's programs built) on a small stack
and a second run (nothing built), with pyopencl's cache on (after one warm-up
process fills it) and off, and prints the medians. The difference of the first
runs is what a stage process pays once for building from source.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="Intel", help="config `device` pattern")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", help="write the figures here (JSON)")
    args = parser.parse_args()
    runs = {"on": [], "off": []}
    with tempfile.TemporaryDirectory() as cache:
        device, _ = one_process(cache, args.device, "on")  # fills the cache
        # The drivers' own caches (PoCL's) are warm for both from here on.
        for _ in range(args.repeats):
            for setting in runs:
                runs[setting].append(one_process(cache, args.device, setting)[1])
    result = {"device": device, "repeats": args.repeats}
    for setting, times in runs.items():
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
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
