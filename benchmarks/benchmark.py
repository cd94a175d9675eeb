"""Time the seed notebook, the library, the workflow and scikit-image side by side.

One command, one machine, one run (a 2-core CPU box with PoCL or a 16-core GPU
node alike)::

    python benchmarks/benchmark.py --stacks N [--large] [--out results.json]
        [--workdir DIR] [--processes P] [--shape Z Y X] [--dry-run-scale 1000,10000]

It draws N synthetic stacks like the demo (``nuclei3d.demo.make_demo_stack``,
86×396×393 uint8 at 1.0×0.202×0.202 µm; not timed), then measures, each in fresh
processes on the same stacks:

1. **seed**: the seed notebook's code as written (``benchmarks/seed_loop.py``), one
   process looping over the N stacks: TIFF read, every seed step (per-slice
   equalization loop included), ``statistics_of_labelled_pixels``, labels TIFF
   write. Its first stack is also timed alone in a fresh process on an empty
   kernel cache (cold start: compilation of every OpenCL kernel).
2. **library**: ``nuclei3d.pipeline.run_pipeline`` plus
   ``nuclei3d.overlay.overlay_images`` in one process, per stage (the device is
   synchronised before each clock read), also cold and warm.
3. **workflow**: ``snakemake --cores P`` with the repo's Snakefile in a fresh
   results folder over the N stacks, end to end, in ``--batches`` batches
   (default P; kernel cache warm: the one the library run filled). Per-stage job
   times come from the jobs' logs.
4. **floor**: the same stage functions in P plain processes without Snakemake,
   writing the same per-stack files (``benchmarks/floor.py``), with each stage's
   median seconds; and the same stages chained on the device in P processes,
   writing only the labels and statistics (``floor_labels``: the files
   scikit-image's run writes).
5. **skimage**: the same steps in scikit-image/SciPy
   (``benchmarks/skimage_pipeline.py``), ``multiprocessing.Pool(P)``.

``--large`` adds one 172×1584×1572 stack, timed in one process each for the seed,
the library and scikit-image. ``--dry-run-scale`` times ``snakemake --dry-run`` (wall
and peak memory) on sample sheets of that many stacks.

Every time is wall-clock seconds. "process" times are measured by this command
around the whole child process (interpreter start, imports, device set-up, work);
per-stack and per-step times are measured inside the child. Medians are over the
warm stacks (all but the first of a process) where there are at least two stacks.
Results are printed as tables and written as JSON (``--out``).
"""

from __future__ import annotations

import argparse
import csv
import getpass
import json
import math
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

# The library worker's start-up clock (stdlib imports before it take milliseconds;
# NumPy and the rest are imported lazily, so they count as its import time).
_PROCESS_START = time.perf_counter()

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BARE = HERE / "bare_layout.smk"  # dry_run_scale: the least a per-stage layout costs
DEMO_SHAPE = (86, 396, 393)
LARGE_SHAPE = (172, 1584, 1572)
VOXEL_SIZE_UM = (1.0, 0.202, 0.202)
DEMO_NUCLEI = 60
# Stages of the library and the workflow, in order; the seed's and skimage's
# steps map onto them (the seed's "statistics" is the library's "measure").
STEPS = (
    "read",
    "resample",
    "equalize",
    "background",
    "segment",
    "measure",
    "overlay",
    "write",
    "pipeline",
)


# -- child processes ----------------------------------------------------------


class ChildFailed(RuntimeError):
    """A timed child process exited with an error."""


# Runs the command as its child and reports wall time, the peak resident set of
# it and its descendants, and the CPU time of the command's own process (not of
# the processes it starts: for Snakemake, its own work, not its jobs'), read
# from /proc every 0.1 s, so the last 0.1 s before its exit may be missed.
# Measured from a small intermediate process because on Linux a child's
# ru_maxrss starts at the resident set of the process it was forked from (the
# memory it had before exec counts): taken directly from this process, every
# child would report at least this process' own peak.
_MEASURE = """
import os, resource, subprocess, sys, time
start = time.perf_counter()
child = subprocess.Popen(sys.argv[2:])
ticks, own = os.sysconf("SC_CLK_TCK"), 0.0
while child.poll() is None:
    try:
        with open(f"/proc/{child.pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
        own = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    except (OSError, IndexError, ValueError):
        pass
    time.sleep(0.1)
wall = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
open(sys.argv[1], "w").write(f"{wall} {peak} {own}")
sys.exit(child.returncode)
"""


def run_timed(command, *, log, cwd=None, env=None):
    """Run `command`, output to `log`; return wall seconds and peak memory (MB).

    Peak memory is the largest resident set of any one process among the command
    and the processes it started and waited for (for Snakemake: its jobs); the
    resident sets of concurrent processes are not added up.
    """
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    report = log.with_name(log.name + ".measure")
    with open(log, "w") as out:
        code = subprocess.call(
            [sys.executable, "-I", "-S", "-c", _MEASURE, report]
            + [str(part) for part in command],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if code != 0:
        tail = log.read_text(errors="replace")[-4000:]
        raise ChildFailed(
            f"{' '.join(map(str, command))} exited with {code} (log {log}):\n{tail}"
        )
    wall, peak_kb, own_cpu = report.read_text().split()
    return {
        "wall_s": float(wall),
        "max_rss_mb": int(peak_kb) / 1024,
        "own_cpu_s": float(own_cpu),
    }


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def warm(stacks):
    """The stacks after a process' first one (all of them if there is only one)."""
    return stacks[1:] if len(stacks) > 1 else stacks


def step_medians(stacks):
    names = [name for name in STEPS if any(name in s["steps"] for s in stacks)]
    names += sorted({n for s in stacks for n in s["steps"]} - set(names))
    return {name: median(s["steps"].get(name) for s in stacks) for name in names}


def summarise_process(result, process):
    """One in-process measurement: process wall plus per-stack figures."""
    stacks = result["stacks"]
    return {
        "process_wall_s": process["wall_s"],
        "max_rss_mb": process["max_rss_mb"],
        "import_s": result.get("import_s"),
        "device_s": result.get("device_s"),
        "loop_s": result.get("loop_s", result.get("pool_s")),
        "first_stack_s": stacks[0]["seconds"],
        "median_stack_s": median(s["seconds"] for s in warm(stacks)),
        "median_steps_s": step_medians(warm(stacks)),
        "first_stack_steps_s": stacks[0]["steps"],
        "nuclei": [s["nuclei"] for s in stacks],
        "stacks": stacks,
    }


# -- library worker (python benchmarks/benchmark.py _library ...) --------------


def library_worker(argv):
    """Chain the library stages in this process, timing each; write JSON."""
    parser = argparse.ArgumentParser(prog="benchmark.py _library")
    parser.add_argument("stacks", nargs="+")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--json", required=True)
    parser.add_argument("--kernel-cache")
    parser.add_argument("--device", default="")
    parser.add_argument("--every-n-slices", type=int, default=20)
    args = parser.parse_args(argv)

    if args.kernel_cache:
        from nuclei3d.kernel_cache import use_kernel_cache

        use_kernel_cache(args.kernel_cache)
    import imageio.v3 as iio
    import pyclesperanto_prototype as cle

    from nuclei3d import io, pipeline
    from nuclei3d.device import select_device
    from nuclei3d.overlay import overlay_images

    imported = time.perf_counter()
    choice = select_device(args.device, cache_dir=args.kernel_cache)
    cle.get_device().queue.finish()
    device_ready = time.perf_counter()

    steps = {}

    def timed(name, function):
        def wrapper(*a, **k):
            begin = time.perf_counter()
            out = function(*a, **k)
            cle.get_device().queue.finish()
            steps[name] = steps.get(name, 0.0) + time.perf_counter() - begin
            return out

        return wrapper

    # run_pipeline calls the stage functions through its module's names.
    for name, attribute in (
        ("resample", "pick_isotropic"),
        ("resample", "push_float32"),
        ("equalize", "equalize_slice_means"),
        ("background", "subtract_background"),
        ("segment", "segment_nuclei"),
        ("measure", "measure_nuclei"),
    ):
        setattr(pipeline, attribute, timed(name, getattr(pipeline, attribute)))

    out_dir = Path(args.out_dir)
    stacks = []
    loop_start = time.perf_counter()
    for path in args.stacks:
        steps.clear()
        begin = time.perf_counter()
        image, voxel_size = io.read_stack(path)
        steps["read"] = time.perf_counter() - begin
        piped = time.perf_counter()
        result = pipeline.run_pipeline(image, voxel_size, pull_intermediates=False)
        cle.get_device().queue.finish()
        steps["pipeline"] = time.perf_counter() - piped
        pictures = timed("overlay", overlay_images)(
            result["resampled"], result["labels"], every_n_slices=args.every_n_slices
        )
        written = time.perf_counter()
        folder = out_dir / Path(path).parent.name
        voxel = (1.0,) * 3
        io.write_stack(folder / "labels.tif", result["labels"], voxel)
        io.write_table(folder / "statistics.csv", result["statistics"])
        for picture_name, picture in pictures.items():
            iio.imwrite(folder / f"{picture_name}.png", picture)
        steps["write"] = time.perf_counter() - written
        stacks.append(
            {
                "stack": str(path),
                "seconds": time.perf_counter() - begin,
                "steps": dict(steps),
                "nuclei": len(result["statistics"]),
            }
        )
    loop_end = time.perf_counter()
    Path(args.json).write_text(
        json.dumps(
            {
                "device": {
                    "name": choice.name,
                    "platform": choice.platform,
                    "is_gpu": choice.is_gpu,
                },
                "import_s": imported - _PROCESS_START,
                "device_s": device_ready - imported,
                "loop_s": loop_end - loop_start,
                "stacks": stacks,
            },
            indent=1,
        )
    )


# -- the measurements ------------------------------------------------------------


def scaled_nuclei(shape):
    """The demo's nuclei density (60 in 86×396×393) for another shape."""
    return max(3, round(DEMO_NUCLEI * math.prod(shape) / math.prod(DEMO_SHAPE)))


def make_stacks(folder, count, shape, *, first_seed=0):
    """Draw `count` demo-like stacks (reused if already there); return their paths."""
    from nuclei3d.demo import make_demo_stack
    from nuclei3d.io import write_stack

    tag = "x".join(map(str, shape))
    paths, seconds = [], []
    for i in range(count):
        path = Path(folder) / tag / f"stack_{i:03d}" / "image.tif"
        if not path.is_file():
            begin = time.perf_counter()
            image, _ = make_demo_stack(
                shape=tuple(shape),
                voxel_size_um=VOXEL_SIZE_UM,
                n_nuclei=scaled_nuclei(shape),
                seed=first_seed + i,
            )
            write_stack(path, image, VOXEL_SIZE_UM)
            del image
            seconds.append(time.perf_counter() - begin)
        paths.append(path)
    return paths, seconds


def cle_runs(name, command, stacks, *, root, cache, device, cold=True):
    """Cold (first stack, empty kernel cache) and warm (all stacks) processes.

    With `cold`, `cache` must be empty: the cold process fills it, and the warm
    one finds it filled. Without, only the warm process runs, on `cache` as it
    is, and no cold figures are reported.
    """
    if cold and cache.exists() and any(cache.iterdir()):
        raise RuntimeError(f"{cache}: a cold start needs an empty kernel cache")
    results = {}
    phases = (("cold", stacks[:1]),) if cold else ()
    for phase, inputs in (*phases, ("warm", stacks)):
        out = root / "runs" / f"{name}-{phase}"
        report = out / "timings.json"
        process = run_timed(
            [
                *command,
                *inputs,
                "--out-dir",
                out / "out",
                "--json",
                report,
                "--kernel-cache",
                cache,
                "--device",
                device,
            ],
            log=out / "log.txt",
        )
        results[phase] = (json.loads(report.read_text()), process)
    warm_result, warm_process = results["warm"]
    summary = summarise_process(warm_result, warm_process)
    summary["device"] = warm_result["device"]
    summary["kernel_cache"] = str(cache)
    if not cold:
        summary["cold"] = summary["cold_start_s"] = None
        return summary
    cold, cold_process = results["cold"]
    summary["cold"] = {
        "process_wall_s": cold_process["wall_s"],
        "import_s": cold["import_s"],
        "device_s": cold["device_s"],
        "first_stack_s": cold["stacks"][0]["seconds"],
        "first_stack_steps_s": cold["stacks"][0]["steps"],
    }
    summary["cold_start_s"] = cold["stacks"][0]["seconds"] - summary["median_stack_s"]
    return summary


def seed_command():
    return [sys.executable, HERE / "seed_loop.py"]


def library_command():
    return [sys.executable, Path(__file__).resolve(), "_library"]


def write_workflow_dir(folder, stacks, *, kernel_cache, device, batches):
    """A run folder with the repo's config and a sheet listing `stacks`."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config.update(
        samples="config/samples.tsv",
        results="results",
        kernel_cache_dir=str(kernel_cache),
        gpu_lock_dir=str(folder / "gpu-locks"),
        device=device,
        batches=batches,
    )
    (folder / "config").mkdir(exist_ok=True)
    (folder / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    rows = ["sample\timage"] + [
        f"{Path(path).parent.name}\t{Path(path).resolve()}" for path in stacks
    ]
    (folder / "config" / "samples.tsv").write_text("\n".join(rows) + "\n")


def snakemake_command(cores, *extra, snakefile=REPO / "Snakefile"):
    return [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        snakefile,
        "--cores",
        cores,
        *extra,
    ]


def workflow_run(
    stacks,
    *,
    root,
    cores,
    kernel_cache,
    device,
    batches,
    extra_args=(),
    name=None,
    snakefile=REPO / "Snakefile",
):
    folder = root / "runs" / (name or f"workflow-{batches}")
    shutil.rmtree(folder, ignore_errors=True)
    write_workflow_dir(
        folder,
        stacks,
        kernel_cache=kernel_cache,
        device=device,
        batches=batches,
    )
    started = time.time()
    process = run_timed(
        snakemake_command(cores, *extra_args, snakefile=snakefile),
        cwd=folder,
        log=folder / "log.txt",
    )
    results = folder / "results"
    # Job wall times: every job of a run (nuclei3d.job) logs "job ends after S s",
    # in logs/<rule>/<sample or batch>.log per stack, logs/<rule>.log run-wide;
    # its first line's time is the job's start.
    seconds, spans = {}, []
    logs = [
        (log, log.parent.name, "per_stack")
        for log in (results / "logs").glob("*/*.log")
    ]
    logs += [(log, log.stem, "run") for log in (results / "logs").glob("*.log")]
    for log, stage, kind in logs:
        text = log.read_text()
        found = re.search(r"job ends after ([0-9.]+) s", text)
        if found:
            job_s = float(found.group(1))
            seconds.setdefault((stage, kind), []).append(job_s)
            begun = datetime.strptime(text[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            spans.append((kind, begun - started, begun - started + job_s))
    per_stage = {
        stage: {
            "kind": kind,
            "jobs": len(values),
            "median_s": median(values),
            "total_s": sum(values),
        }
        for (stage, kind), values in sorted(seconds.items())
        if values
    }
    with open(results / "summary.csv") as handle:
        nuclei = [int(row["nuclei"]) for row in csv.DictReader(handle)]
    device_line = ""
    logs = sorted((results / "logs" / "resample").glob("*.log"))
    if logs:
        found = re.search(r"OpenCL device \d+: (.*)", logs[0].read_text())
        device_line = found.group(1) if found else ""
    per_stack = sum(
        v["median_s"] for v in per_stage.values() if v["kind"] == "per_stack"
    )
    stage_spans = [(start, end) for kind, start, end in spans if kind == "per_stack"]
    first = min(start for start, _ in stage_spans)
    last = max(end for _, end in stage_spans)
    return {
        "wall_s": process["wall_s"],
        "max_rss_mb": process["max_rss_mb"],
        # CPU time of Snakemake's own process (planning, scheduling, recording
        # each finished job), which runs on one core.
        "snakemake_cpu_s": process["own_cpu_s"],
        "cores": cores,
        "batches": batches,
        # Seconds from the command's start: its first stage job's start, its last
        # stage job's end and its last job's end; and how busy the cores were
        # with stage jobs between the first and the last.
        "timeline": {
            "first_stage_job_start_s": first,
            "last_stage_job_end_s": last,
            "last_job_end_s": max(end for _, _, end in spans),
            "stage_jobs_busy": sum(end - start for start, end in stage_spans)
            / (cores * (last - first)),
        },
        "jobs": sum(v["jobs"] for v in per_stage.values()),
        "median_job_s": {k: v["median_s"] for k, v in per_stage.items()},
        "job_seconds_per_stack": per_stack,
        "per_stage": per_stage,
        "nuclei": nuclei,
        "device_log_line": device_line,
        "kernel_cache": str(kernel_cache),
    }


def floor_run(stacks, *, root, processes, kernel_cache, device, labels_only=False):
    """benchmarks/floor.py: the workflow's stages in plain processes, same files
    (`labels_only`: the stages chained on the device, writing only labels and
    statistics, as scikit-image's run does)."""
    name = "floor-labels" if labels_only else "floor"
    out = root / "runs" / name
    shutil.rmtree(out, ignore_errors=True)
    report = out / "timings.json"
    process = run_timed(
        [
            sys.executable,
            HERE / "floor.py",
            *stacks,
            "--processes",
            processes,
            "--out-dir",
            out / "out",
            "--device",
            device,
            "--kernel-cache",
            kernel_cache,
            "--json",
            report,
            *(["--labels-only"] if labels_only else []),
        ],
        log=out / "log.txt",
    )
    result = json.loads(report.read_text())
    return {
        "wall_s": process["wall_s"],
        "max_rss_mb": process["max_rss_mb"],
        "processes": processes,
        "median_stack_s": median(s for part in result["stack_s"] for s in part),
        "median_stage_s": {
            stage: median(values) for stage, values in result["stage_s"].items()
        },
    }


def skimage_run(stacks, *, root, processes, name="skimage"):
    out = root / "runs" / name
    report = out / "timings.json"
    process = run_timed(
        [
            sys.executable,
            HERE / "skimage_pipeline.py",
            *stacks,
            "--processes",
            processes,
            "--out-dir",
            out / "out",
            "--json",
            report,
            "--voxel-size",
            *VOXEL_SIZE_UM,
        ],
        log=out / "log.txt",
    )
    result = json.loads(report.read_text())
    summary = summarise_process(result, process)
    summary["processes"] = processes
    # With one stack per worker every stack is some process' first: all count.
    summary["median_stack_s"] = median(s["seconds"] for s in result["stacks"])
    summary["median_steps_s"] = step_medians(result["stacks"])
    return summary


def large_runs(path, shape, *, root, caches, device, repeats=5):
    """The large stack `repeats` times in one process each (warm kernel caches).

    ``stack_s`` and ``steps_s`` are medians over the runs after a process' first
    (which also sets up buffers of this size); ``first_stack_s`` is that first run.
    """
    out = {"shape": list(shape), "nuclei_drawn": scaled_nuclei(shape)}
    out["repeats"] = repeats
    runs = {}
    for name, command in (("seed", seed_command()), ("library", library_command())):
        folder = root / "runs" / f"large-{name}"
        report = folder / "timings.json"
        process = run_timed(
            [
                *command,
                *[path] * repeats,
                "--out-dir",
                folder / "out",
                "--json",
                report,
                "--kernel-cache",
                caches[name],
                "--device",
                device,
            ],
            log=folder / "log.txt",
        )
        runs[name] = process, json.loads(report.read_text())["stacks"]
    sk = skimage_run([path] * repeats, root=root, processes=1, name="large-skimage")
    runs["skimage"] = {"wall_s": sk["process_wall_s"], "max_rss_mb": sk["max_rss_mb"]}
    runs["skimage"] = runs["skimage"], sk["stacks"]
    for name, (process, stacks) in runs.items():
        out[name] = {
            "process_wall_s": process["wall_s"],
            "max_rss_mb": process["max_rss_mb"],
            "stack_s": median(s["seconds"] for s in warm(stacks)),
            "steps_s": step_medians(warm(stacks)),
            "first_stack_s": stacks[0]["seconds"],
            "first_steps_s": stacks[0]["steps"],
            "nuclei": stacks[0]["nuclei"],
        }
    return out


def dry_run_scale(counts, *, root):
    """Wall and peak memory of `snakemake --dry-run` over sheets of `counts` stacks.

    Every row names its own image file: hard links to one tiny TIFF (the resample
    rule's input must exist, and distinct paths keep Snakemake's per-file checks
    realistic). The dry run prints every job, as a user's ``snakemake -n`` does,
    into a log file (``--quiet`` would hide the job count). Next to it, on the
    same sheet, ``bare_layout.smk``: the same per-stage layout with nothing but
    input and output patterns, the least Snakemake needs to plan it.
    """
    import numpy as np

    from nuclei3d.io import write_stack

    results = []
    for count in counts:
        folder = root / "runs" / f"dry-run-{count}"
        shutil.rmtree(folder, ignore_errors=True)
        images = folder / "images"
        images.mkdir(parents=True)
        tiny = images / "tiny.tif"
        write_stack(tiny, np.zeros((2, 2, 2), np.uint8), VOXEL_SIZE_UM)
        stacks = []
        for i in range(count):
            path = images / f"s{i:05d}" / "image.tif"
            path.parent.mkdir()
            try:
                os.link(tiny, path)
            except OSError:
                shutil.copyfile(tiny, path)
            stacks.append(path)
        # About 100 stacks a batch, as README "Batches" suggests for a cluster.
        batches = max(1, count // 100)
        write_workflow_dir(
            folder, stacks, kernel_cache=folder / "cache", device="", batches=batches
        )
        row = {"stacks": count, "batches": batches}
        for name, snakefile in (("workflow", REPO / "Snakefile"), ("bare", BARE)):
            log = folder / f"log-{name}.txt"
            command = snakemake_command(1, "--dry-run")
            command[command.index("-s") + 1] = snakefile
            process = run_timed(command, cwd=folder, log=log)
            found = re.search(r"^total\s+(\d+)", log.read_text(), re.MULTILINE)
            measured = {
                "jobs": int(found.group(1)) if found else None,
                "wall_s": process["wall_s"],
                "max_rss_mb": process["max_rss_mb"],
            }
            if name == "workflow":
                row.update(measured)
            else:
                row["bare_layout"] = measured
        results.append(row)
        shutil.rmtree(images, ignore_errors=True)
    return results


def machine_info():
    try:
        import pyopencl as cl

        from nuclei3d.probe import cl_devices

        devices = [
            {
                "name": d.name,
                "platform": d.platform.name,
                "version": d.platform.version,
                "type": cl.device_type.to_string(d.type),
            }
            for d in cl_devices()
        ]
    except Exception as error:  # reported, not fatal
        devices = [{"error": repr(error)}]
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for module in (
        "numpy",
        "scipy",
        "skimage",
        "pyclesperanto_prototype",
        "pyopencl",
        "snakemake",
        "tifffile",
    ):
        try:
            versions[module] = __import__(module).__version__
        except Exception:
            versions[module] = None
    return {
        "bytecode": bytecode_info(),
        "hostname": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "opencl_devices": devices,
        "versions": versions,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "load_average_at_start": list(os.getloadavg()),
        "user": getpass.getuser(),
    }


def bytecode_info():
    """Whether the packages every process imports have compiled bytecode cached.

    Without it (an install with ``pip --no-compile`` where
    ``PYTHONDONTWRITEBYTECODE`` is set, as on the lent GPU nodes), every process
    compiles them from source: a Snakemake start there took 2.9-3.7 s instead of
    1.2-1.3 s. A normal ``pip install`` compiles them.
    """
    import importlib.util

    cached = {}
    for module in ("snakemake", "pyclesperanto_prototype", "pandas", "matplotlib"):
        spec = importlib.util.find_spec(module)
        cached[module] = bool(
            spec
            and spec.origin
            and os.path.exists(importlib.util.cache_from_source(spec.origin))
        )
    return {"dont_write_bytecode": bool(sys.flags.dont_write_bytecode), **cached}


def ratio(a, b):
    return a / b if a is not None and b else None


def ratios(report):
    seed, library = report["seed"], report["library"]
    workflow, sk = report["workflow"], report["skimage"]
    return {
        "end_to_end": {
            "description": "wall time for all N stacks, whole command (process "
            "start to finish), divided by the seed loop's",
            "workflow/seed": ratio(workflow["wall_s"], seed["process_wall_s"]),
            "workflow/floor": ratio(workflow["wall_s"], report["floor"]["wall_s"]),
            "workflow/skimage": ratio(workflow["wall_s"], sk["process_wall_s"]),
            "floor_labels/skimage": ratio(
                report["floor_labels"]["wall_s"], sk["process_wall_s"]
            ),
            "skimage/seed": ratio(sk["process_wall_s"], seed["process_wall_s"]),
            "library/seed": ratio(library["process_wall_s"], seed["process_wall_s"]),
        },
        "per_stack": {
            "description": "median seconds per stack (warm) divided by the seed "
            "loop's; workflow: sum of its per-stack jobs' median times; skimage: "
            "one worker's time for one stack",
            "workflow/seed": ratio(
                workflow["job_seconds_per_stack"], seed["median_stack_s"]
            ),
            "skimage/seed": ratio(sk["median_stack_s"], seed["median_stack_s"]),
            "library/seed": ratio(library["median_stack_s"], seed["median_stack_s"]),
        },
    }


def targets(report):
    """Issue 6's targets against this run's figures: (what, measured, limit, met)."""
    library, seed = report["library"]["median_steps_s"], report["seed"]
    rows = [
        ("equalize, s per stack", library.get("equalize"), 0.001),
        ("statistics, s per stack", library.get("measure"), 0.010),
        ("in-process pipeline, s per stack", library.get("pipeline"), 0.015),
    ]
    large = report.get("large")
    if large:
        steps = large["library"]["steps_s"]
        rows.append(("large stack pipeline, s", steps.get("pipeline"), 0.100))
    wall = report["workflow"]["wall_s"]
    rows.append(
        ("workflow wall / seed loop wall", ratio(wall, seed["process_wall_s"]), 0.5)
    )
    rows.append(
        ("workflow wall / floor wall", ratio(wall, report["floor"]["wall_s"]), 1.2)
    )
    rows.append(
        (
            "workflow wall / scikit-image wall",
            ratio(wall, report["skimage"]["process_wall_s"]),
            0.5,
        )
    )
    for row in report.get("dry_run") or []:
        if row["stacks"] == 10000:
            rows.append(("dry run 10,000 stacks, s", row["wall_s"], 20.0))
            rows.append(("dry run 10,000 stacks, peak MB", row["max_rss_mb"], 1000.0))
    return [
        {
            "target": what,
            "measured": value,
            "limit": limit,
            "met": None if value is None else value <= limit,
        }
        for what, value, limit in rows
    ]


# -- printing ----------------------------------------------------------------------


def fmt(value, unit="s"):
    if value is None:
        return "-"
    if unit == "s":
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    if unit == "x":
        return f"{value:.2f}×"
    return f"{value:.0f}"


def print_report(report, file=sys.stdout):
    def out(line=""):
        print(line, file=file)

    machine, settings = report["machine"], report["settings"]
    seed, library = report["seed"], report["library"]
    workflow, sk = report["workflow"], report["skimage"]
    device = library["device"]
    shape = "×".join(map(str, settings["shape"]))
    out(
        f"nuclei3d benchmark: {settings['stacks']} stacks {shape} uint8, "
        f"P={settings['processes']} processes/cores"
    )
    out(
        f"machine: {machine['hostname']}, {machine['cpu_count']} CPUs "
        f"({machine['cpu_model']}); OpenCL device: {device['name']} on "
        f"{device['platform']} ({'GPU' if device['is_gpu'] else 'CPU'})"
    )
    load = [machine.get(f"load_average_at_{when}") for when in ("start", "end")]
    out(
        "1-min load average at start / end: "
        + " / ".join("-" if v is None else f"{v[0]:.2f}" for v in load)
        + " (other work on the machine skews every figure)"
    )
    uncompiled = [
        name
        for name, cached in machine.get("bytecode", {}).items()
        if name != "dont_write_bytecode" and not cached
    ]
    if uncompiled:
        out(
            "WARNING: no cached bytecode for "
            + ", ".join(uncompiled)
            + ": every process compiles them from source (slower starts than "
            "after a normal pip install)"
        )
    out()
    out("All stacks, end to end (seconds, wall; process = interpreter start to exit)")
    header = f"{'':34}{'wall':>9}{'/seed':>8}{'per stack':>11}{'peak MB':>9}"
    out(header)
    rows = (
        (
            "seed notebook loop, 1 process",
            seed["process_wall_s"],
            seed["median_stack_s"],
            seed["max_rss_mb"],
        ),
        (
            "library pipeline, 1 process",
            library["process_wall_s"],
            library["median_stack_s"],
            library["max_rss_mb"],
        ),
        (
            f"workflow, snakemake --cores {workflow['cores']}",
            workflow["wall_s"],
            workflow["job_seconds_per_stack"],
            workflow["max_rss_mb"],
        ),
        (
            f"floor: stages in {report['floor']['processes']} processes",
            report["floor"]["wall_s"],
            report["floor"]["median_stack_s"],
            report["floor"]["max_rss_mb"],
        ),
        (
            f"floor, labels + table only ({report['floor_labels']['processes']})",
            report["floor_labels"]["wall_s"],
            report["floor_labels"]["median_stack_s"],
            report["floor_labels"]["max_rss_mb"],
        ),
        (
            f"scikit-image, Pool({sk['processes']})",
            sk["process_wall_s"],
            sk["median_stack_s"],
            sk["max_rss_mb"],
        ),
    )
    for name, wall, per_stack, rss in rows:
        out(
            f"{name:34}{fmt(wall):>9}{fmt(ratio(wall, seed['process_wall_s']), 'x'):>8}"
            f"{fmt(per_stack):>11}{fmt(rss, 'mb'):>9}"
        )
    out(
        "  per stack: median of warm stacks; workflow: sum of the medians of its "
        "per-stack jobs (threads of one Snakemake process; a batched job's time "
        "is for its whole batch)"
    )
    out()
    out("Per step, median seconds per stack (warm)")
    out(f"{'step':12}{'seed':>10}{'library':>10}{'wf job':>10}{'skimage':>10}")
    seed_steps = dict(seed["median_steps_s"])
    seed_steps["measure"] = seed_steps.pop("statistics", None)
    for step in STEPS:
        out(
            f"{step:12}{fmt(seed_steps.get(step)):>10}"
            f"{fmt(library['median_steps_s'].get(step)):>10}"
            f"{fmt(workflow['median_job_s'].get(step)):>10}"
            f"{fmt(sk['median_steps_s'].get(step)):>10}"
        )
    out(
        f"{'total':12}{fmt(seed['median_stack_s']):>10}"
        f"{fmt(library['median_stack_s']):>10}"
        f"{fmt(workflow['job_seconds_per_stack']):>10}{fmt(sk['median_stack_s']):>10}"
    )
    others = [
        f"{stage} {fmt(v['median_s'])}" + (" (run)" if v["kind"] == "run" else "")
        for stage, v in workflow["per_stage"].items()
        if stage not in STEPS
    ]
    out(
        "  seed measure = statistics_of_labelled_pixels; wf job = whole job "
        "(start-up, read, stage, write); library pipeline = "
        "run_pipeline (resample to measure, one push, labels pulled)"
    )
    if others:
        out("  other workflow jobs (median s): " + ", ".join(others))
    out(
        "  workflow total per stack = every per-stack job, "
        "the other jobs included; (run) = once per run"
    )
    out()
    out("Start-up and cold kernel cache (fresh process, empty cache, first stack)")
    out(
        f"{'':10}{'import':>9}{'device':>9}{'1st cold':>10}{'1st warm':>10}"
        f"{'median':>9}{'cold cost':>11}"
    )
    for name, data in (("seed", seed), ("library", library)):
        cold = data["cold"] or dict.fromkeys(("import_s", "device_s", "first_stack_s"))
        out(
            f"{name:10}{fmt(cold['import_s']):>9}{fmt(cold['device_s']):>9}"
            f"{fmt(cold['first_stack_s']):>10}{fmt(data['first_stack_s']):>10}"
            f"{fmt(data['median_stack_s']):>9}{fmt(data['cold_start_s']):>11}"
        )
    out(
        "  1st warm: first stack of a fresh process on a filled kernel cache "
        "(without a cold run: on an empty one); cold cost = 1st cold - median"
    )
    out()
    out("Ratios (< 1: faster than the seed loop)")
    for kind, values in report["ratios"].items():
        parts = [f"{k} {fmt(v, 'x')}" for k, v in values.items() if k != "description"]
        out(f"  {kind:11} " + ", ".join(parts))
    out()
    out(
        "Nuclei found (truth: "
        f"{settings['nuclei_drawn']} drawn per stack): seed {seed['nuclei']}, "
        f"library {library['nuclei']}, workflow {workflow['nuclei']}, "
        f"skimage {sk['nuclei']}"
    )
    large = report.get("large")
    if large:
        out()
        repeats = large.get("repeats", 1)
        out(
            f"Large stack {'×'.join(map(str, large['shape']))}, {repeats} times in "
            "one process each; stack and steps: median after the first"
        )
        out(f"{'':10}{'stack':>9}{'first':>9}{'process':>9}{'peak MB':>9}  steps")
        for name in ("seed", "library", "skimage"):
            data = large[name]
            steps = ", ".join(f"{k} {fmt(v)}" for k, v in data["steps_s"].items())
            first = data.get("first_stack_s", data["stack_s"])
            out(
                f"{name:10}{fmt(data['stack_s']):>9}{fmt(first):>9}"
                f"{fmt(data['process_wall_s']):>9}"
                f"{fmt(data['max_rss_mb'], 'mb'):>9}  {steps}"
            )
    if report.get("dry_run"):
        out()
        out("snakemake --dry-run over large sample sheets")
        out(
            f"{'':10}{'workflow':>27}{'bare layout (bare_layout.smk)':>34}"
            f"\n{'stacks':>8}{'jobs':>9}{'wall s':>9}{'peak MB':>9}"
            f"{'jobs':>9}{'wall s':>9}{'peak MB':>9}{'wall /bare':>11}"
        )
        for row in report["dry_run"]:
            bare = row.get("bare_layout") or {}
            out(
                f"{row['stacks']:>8}{row['jobs'] or '-':>9}{fmt(row['wall_s']):>9}"
                f"{fmt(row['max_rss_mb'], 'mb'):>9}{bare.get('jobs') or '-':>9}"
                f"{fmt(bare.get('wall_s')):>9}{fmt(bare.get('max_rss_mb'), 'mb'):>9}"
                f"{fmt(ratio(row['wall_s'], bare.get('wall_s')), 'x'):>11}"
            )
    if report.get("targets"):
        out()
        out("Targets (issue 6; on an H100/H200 node with 16 cores)")
        for row in report["targets"]:
            met = {True: "met", False: "MISSED", None: "-"}[row["met"]]
            value = "-" if row["measured"] is None else f"{row['measured']:.4g}"
            out(f"  {row['target']:44}{value:>9} <= {row['limit']:<8g}{met}")


# -- main ----------------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.split("\n")[1:]),
    )
    parser.add_argument("--stacks", type=int, required=True, help="number of stacks N")
    parser.add_argument(
        "--large", action="store_true", help="add one large stack (--large-shape)"
    )
    parser.add_argument(
        "--large-shape",
        type=int,
        nargs=3,
        default=LARGE_SHAPE,
        metavar=("Z", "Y", "X"),
        help="shape of the large stack (default: 172 1584 1572; drawing it needs "
        "about 16 GB of memory)",
    )
    parser.add_argument(
        "--large-repeats",
        type=int,
        default=5,
        metavar="R",
        help="runs of the large stack per process (default 5: medians of the 4 "
        "after the first)",
    )
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument(
        "--workdir",
        type=Path,
        help="keep stacks, caches and runs here (reused stacks are not redrawn); "
        "default: a temporary folder, removed at the end",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="snakemake --cores and scikit-image processes (default: usable CPUs)",
    )
    parser.add_argument(
        "--shape",
        type=int,
        nargs=3,
        default=DEMO_SHAPE,
        metavar=("Z", "Y", "X"),
        help="stack shape (default: the demo's 86 396 393)",
    )
    parser.add_argument(
        "--dry-run-scale",
        default="1000,10000",
        help="comma-separated sample-sheet sizes for the snakemake --dry-run "
        "timing; empty or 0 to skip (default: 1000,10000)",
    )
    parser.add_argument(
        "--batches",
        type=int,
        default=0,
        help="config `batches` of the workflow run (default: --processes)",
    )
    parser.add_argument(
        "--device", default="", help="OpenCL device name pattern (default: as jobs)"
    )
    parser.add_argument(
        "--cold",
        default="seed,library",
        help="comma-separated: which of seed, library also get a cold-start "
        "process (first stack, own empty kernel cache); the others share the "
        "seed's cache; empty for none (default: seed,library)",
    )
    args = parser.parse_args(argv)
    if args.stacks < 1:
        parser.error("--stacks must be at least 1")
    args.dry_run_scale = [
        int(n) for n in args.dry_run_scale.replace(" ", "").split(",") if n and int(n)
    ]
    args.cold = {name for name in args.cold.replace(" ", "").split(",") if name}
    if args.cold - {"seed", "library"}:
        parser.error(f"--cold: unknown {sorted(args.cold - {'seed', 'library'})}")
    return args


LOAD_AVERAGES = []  # (section just started, 1-min load average then)


def progress(text):
    elapsed = time.perf_counter() - _PROCESS_START
    LOAD_AVERAGES.append((text, os.getloadavg()[0]))
    print(f"[{elapsed:7.1f} s] {text}", file=sys.stderr, flush=True)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_library"]:
        return library_worker(argv[1:])
    args = parse_args(argv)
    temporary = args.workdir is None
    root = Path(
        tempfile.mkdtemp(prefix="nuclei3d-bench-") if temporary else args.workdir
    )
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    for stale in ("runs", "caches"):
        shutil.rmtree(root / stale, ignore_errors=True)
    started = time.perf_counter()
    try:
        report = {
            "machine": machine_info(),
            "settings": {
                "stacks": args.stacks,
                "shape": list(args.shape),
                "voxel_size_um": list(VOXEL_SIZE_UM),
                "nuclei_drawn": scaled_nuclei(args.shape),
                "processes": args.processes,
                "large": args.large,
                "large_shape": list(args.large_shape) if args.large else None,
                "large_repeats": args.large_repeats if args.large else None,
                "dry_run_scale": args.dry_run_scale,
                "device_pattern": args.device,
                "cold": sorted(args.cold),
                "workdir": str(root),
                "command": " ".join(["benchmarks/benchmark.py", *argv]),
            },
        }
        progress(f"drawing {args.stacks} stacks {args.shape}")
        stacks, generated = make_stacks(root / "stacks", args.stacks, args.shape)
        report["generation"] = {"stacks_drawn": len(generated), "seconds": generated}
        large_path = None
        if args.large:
            progress(f"drawing the large stack {args.large_shape}")
            (large_path,), seconds = make_stacks(
                root / "stacks", 1, args.large_shape, first_seed=1000
            )
            report["generation"]["large_seconds"] = seconds
        # Kernel caches: one per cold start (empty at first); a run without a
        # cold start shares the seed's, filled by then (saves compiling twice).
        caches = {
            name: root / "caches" / (name if name in args.cold else "seed")
            for name in ("seed", "library")
        }
        for name, title, command in (
            ("seed", "seed notebook loop", seed_command()),
            ("library", "library pipeline", library_command()),
        ):
            progress(f"{title} ({'cold, then ' * (name in args.cold)}warm)")
            report[name] = cle_runs(
                name,
                command,
                stacks,
                root=root,
                cache=caches[name],
                device=args.device,
                cold=name in args.cold,
            )
        # matplotlib builds its font cache on its first use on a machine, once,
        # like the kernel cache: build it before timing the workflow's plot job.
        subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"])
        batches = args.batches or args.processes
        progress(f"workflow, snakemake --cores {args.processes}, batches {batches}")
        # The workflow and the floors share the library's (filled) kernel cache.
        shared = dict(root=root, kernel_cache=caches["library"], device=args.device)
        report["workflow"] = workflow_run(
            stacks, cores=args.processes, batches=batches, **shared
        )
        for key, labels_only, what in (
            ("floor", False, "the stages"),
            ("floor_labels", True, "labels and statistics only"),
        ):
            progress(f"floor: {what} in {args.processes} plain processes")
            report[key] = floor_run(
                stacks, processes=args.processes, labels_only=labels_only, **shared
            )
        progress(f"scikit-image, Pool({args.processes})")
        report["skimage"] = skimage_run(stacks, root=root, processes=args.processes)
        report["ratios"] = ratios(report)
        if large_path is not None:
            progress("large stack: seed, library, scikit-image")
            report["large"] = large_runs(
                large_path,
                args.large_shape,
                root=root,
                caches=caches,
                device=args.device,
                repeats=args.large_repeats,
            )
        if args.dry_run_scale:
            progress(f"snakemake --dry-run over {args.dry_run_scale} stacks")
            report["dry_run"] = dry_run_scale(args.dry_run_scale, root=root)
        report["targets"] = targets(report)
        report["benchmark_wall_s"] = time.perf_counter() - started
        report["machine"]["load_average_at_end"] = list(os.getloadavg())
        report["machine"]["load_average_1min_by_section"] = dict(LOAD_AVERAGES)
        print_report(report)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=1) + "\n")
            progress(f"wrote {args.out}")
    finally:
        if temporary:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
