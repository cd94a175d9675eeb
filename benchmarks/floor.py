"""The floor under the workflow: its stages in plain processes, without Snakemake.

    python benchmarks/floor.py --processes P --out-dir DIR [--device D]
        [--kernel-cache DIR] [--labels-only] [--json FILE] STACK.tif ...

Each of P processes takes every P-th stack, opens the OpenCL device once
(``nuclei3d.device.select_device``) and runs on each stack the same stage
functions, in the same order, that the workflow's jobs run (each stage module's
``run_stage``: resample, equalize, background, segment, measure, overlay), with
the parameters of ``config/config.yaml``. So it writes every per-stack file the
workflow writes (four TIFFs, the depth profile, the statistics table, the
overlay PNGs) under ``DIR/<stack>/``. What the workflow costs beyond this is its
scheduling, process start-ups and hand-over between stages. The JSON has each
stack's seconds, and each stage's.

``--labels-only``: what the floor costs without the intermediates and the
overlays. Each stack goes through ``nuclei3d.pipeline.run_pipeline`` (the same
stage functions, chained on the device) and only its labels (TIFF) and
statistics (CSV) are written: the files ``benchmarks/skimage_pipeline.py``
writes.
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
    """Run every stage on this worker's stacks; seconds per stack and per stage."""
    stacks, out_dir, device, kernel_cache, labels_only = job
    import importlib

    from nuclei3d.device import select_device
    from nuclei3d.job import Stack
    from nuclei3d.kernel_cache import use_kernel_cache

    if kernel_cache:
        use_kernel_cache(kernel_cache)
    select_device(device, cache_dir=kernel_cache)
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    if labels_only:
        return [labels_and_table(image, out_dir, config) for image in stacks], {}
    modules = {name: importlib.import_module(f"nuclei3d.{name}") for name, *_ in STAGES}
    log = logging.getLogger("floor")
    seconds, stage_s = [], {name: [] for name, *_ in STAGES}
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
            began = time.perf_counter()
            modules[name].run_stage(stack, log)
            stage_s[name].append(time.perf_counter() - began)
        seconds.append(time.perf_counter() - start)
    return seconds, stage_s


def labels_and_table(image, out_dir, config):
    """``run_pipeline`` on one stack, writing its labels and statistics; seconds."""
    from nuclei3d import io
    from nuclei3d.pipeline import run_pipeline

    start = time.perf_counter()
    stack, voxel_size_um = io.read_stack(image)
    voxel = config["resample"]["target_voxel_size_um"]
    result = run_pipeline(
        stack,
        voxel_size_um,
        target_voxel_size_um=voxel,
        equalize=config["equalize"]["enabled"],
        radius_um=config["background"]["radius_um"],
        spot_sigma_um=config["segment"]["spot_sigma_um"],
        outline_sigma_um=config["segment"]["outline_sigma_um"],
        pull_intermediates=False,
    )
    folder = Path(out_dir) / Path(image).parent.name
    folder.mkdir(parents=True, exist_ok=True)
    io.write_stack(folder / "labels.tif", result["labels"], (voxel,) * 3)
    io.write_table(folder / "statistics.csv", result["statistics"])
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stacks", nargs="+")
    parser.add_argument("--processes", type=int, required=True)
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--device", default="")
    parser.add_argument("--kernel-cache")
    parser.add_argument("--labels-only", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    jobs = [
        (
            args.stacks[i :: args.processes],
            args.out_dir,
            args.device,
            args.kernel_cache,
            args.labels_only,
        )
        for i in range(min(args.processes, len(args.stacks)))
    ]
    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(len(jobs)) as pool:
        per_process = pool.map(worker, jobs)
    wall = time.perf_counter() - start
    stage_s = {}
    for _, stages in per_process:
        for name, values in stages.items():
            stage_s.setdefault(name, []).extend(values)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "wall_s": wall,
                    "stack_s": [seconds for seconds, _ in per_process],
                    "stage_s": stage_s,
                }
            )
            + "\n"
        )
    print(f"{len(args.stacks)} stacks in {len(jobs)} processes: {wall:.2f} s")


if __name__ == "__main__":
    main()
