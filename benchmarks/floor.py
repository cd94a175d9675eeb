"""The floor under the workflow: its stages in plain processes, without Snakemake.

    python benchmarks/floor.py --processes P --out-dir DIR [--device D]
        [--kernel-cache DIR] [--json FILE] STACK.tif ...

Each of P processes takes every P-th stack, opens the OpenCL device once
(``nuclei3d.device.select_device``) and runs on each stack the same stage
functions, in the same order, that the workflow's jobs run (each stage module's
``run_stage``: resample, equalize, background, segment, measure, overlay), with
the parameters of ``config/config.yaml``. So it writes every per-stack file the
workflow writes (four TIFFs, the depth profile, the statistics table, the
overlay PNGs) under ``DIR/<stack>/``. What the workflow costs beyond this is its
scheduling, process start-ups and hand-over between stages.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

STAGES = (
    ("resample", {}, "resampled.tif"),
    ("equalize", {"resampled": "resampled.tif"}, "equalized.tif"),
    ("background", {"equalized": "equalized.tif"}, "background.tif"),
    ("segment", {"background": "background.tif"}, "labels.tif"),
    (
        "measure",
        {"labels": "labels.tif", "intensity": "resampled.tif"},
        "statistics.csv",
    ),
    ("overlay", {"intensity": "resampled.tif", "labels": "labels.tif"}, "overlay"),
)


def stage_params(config, stage, sample, image):
    if stage == "resample":
        return {
            "sample": sample,
            "image": image,
            "channel": None,
            "scene": None,
            "timepoint": None,
            "voxel_size_um": None,
            "default_voxel_size_um": None,
            **config["resample"],
        }
    return {"sample": sample, **config.get(stage, {})}


def worker(job):
    """Run every stage on this worker's stacks; seconds per stack."""
    stacks, out_dir, device, kernel_cache = job
    import importlib

    from nuclei3d.device import select_device
    from nuclei3d.job import Stack
    from nuclei3d.kernel_cache import use_kernel_cache

    if kernel_cache:
        use_kernel_cache(kernel_cache)
    select_device(device, cache_dir=kernel_cache)
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    modules = {name: importlib.import_module(f"nuclei3d.{name}") for name, *_ in STAGES}
    log = logging.getLogger("floor")
    seconds = []
    for image in stacks:
        sample = Path(image).parent.name
        folder = Path(out_dir) / sample
        folder.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        for name, inputs, output in STAGES:
            outputs = {"profile": str(folder / "depth_profile.csv")}
            stack = Stack(
                name=sample,
                inputs={key: str(folder / file) for key, file in inputs.items()},
                output=str(folder / output),
                outputs={name: str(folder / output), **outputs},
                params=stage_params(config, name, sample, image),
            )
            modules[name].run_stage(stack, log)
        seconds.append(time.perf_counter() - start)
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stacks", nargs="+")
    parser.add_argument("--processes", type=int, required=True)
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--device", default="")
    parser.add_argument("--kernel-cache")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    jobs = [
        (args.stacks[i :: args.processes], args.out_dir, args.device, args.kernel_cache)
        for i in range(min(args.processes, len(args.stacks)))
    ]
    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(len(jobs)) as pool:
        per_process = pool.map(worker, jobs)
    wall = time.perf_counter() - start
    if args.json:
        Path(args.json).write_text(
            json.dumps({"wall_s": wall, "stack_s": per_process}) + "\n"
        )
    print(f"{len(args.stacks)} stacks in {len(jobs)} processes: {wall:.2f} s")


if __name__ == "__main__":
    main()
