"""Time every OpenCL step of the pipeline on one device, for finding hot spots.

    python benchmarks/step_profile.py [--repeats 20] [--large] [--device PATTERN]
                                      [--cprofile N] [--out FILE]

Draws a demo-like stack (86×396×393 uint8; ``--large`` also 172×1584×1572),
then times each step alone, synchronising the queue before every clock read, and
prints medians in ms as JSON; ``--out`` writes it to a file too, since the
``printf`` in one of pyclesperanto's maxima kernels adds "size: N" lines to
standard output. ``--cprofile N`` also runs the whole pipeline N times under
cProfile and prints the functions that took longest (own time), which tells Python
set-up from driver calls. Not part of the side-by-side benchmark
(``benchmark.py``): this says where the time of one stage goes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

VOXEL = (1.0, 0.202, 0.202)


def profile(image, repeats, device):
    """Median ms of every step on `image` (a host stack)."""
    import pyclesperanto_prototype as cle

    from nuclei3d import pipeline
    from nuclei3d.background import top_hat_box
    from nuclei3d.device import pull, push, push_float32
    from nuclei3d.equalize import equalize_slice_means
    from nuclei3d.measure import measure_nuclei
    from nuclei3d.resample import pick_isotropic
    from nuclei3d.segment import (
        detect_maxima,
        gaussian_blur,
        label_seed_points,
        segment_nuclei,
        threshold_otsu,
        voronoi_otsu_labeling,
    )

    def timed(function):
        times = []
        for _ in range(repeats + 1):  # the first run builds kernels
            device.queue.finish()
            begin = time.perf_counter()
            out = function()
            device.queue.finish()
            times.append(time.perf_counter() - begin)
        return round(statistics.median(times[1:]) * 1e3, 3), out

    factors = dict(factor_x=0.202, factor_y=0.202, factor_z=1.0, auto_size=True)
    steps = {}
    steps["cle_push_uint8"], raw = timed(lambda: cle.push(image))
    steps["pinned_push_uint8"], raw = timed(lambda: push(image))
    steps["scale_on_device"], resampled = timed(lambda: cle.scale(raw, **factors))
    steps["cle_pull_resampled"], host = timed(lambda: cle.pull(resampled))
    steps["pinned_pull_resampled"], host = timed(lambda: pull(resampled))
    steps["pick_on_host"], picked = timed(lambda: pick_isotropic(image, VOXEL))
    if not (picked == host).all():
        raise AssertionError("nuclei3d's host resampling differs from cle.scale")
    steps["push_float32_picked"], _ = timed(lambda: push_float32(picked))
    steps["equalize_on_device"], equalized = timed(
        lambda: equalize_slice_means(resampled, on_device=True)
    )
    steps["equalize_host_to_host"], _ = timed(lambda: equalize_slice_means(host))
    steps["top_hat_box"], tophat = timed(
        lambda: cle.top_hat_box(equalized, radius_x=5, radius_y=5, radius_z=5)
    )
    steps["own_top_hat_box"], own_tophat = timed(lambda: top_hat_box(equalized, 5))
    if not (cle.pull(own_tophat) == cle.pull(tophat)).all():
        raise AssertionError("nuclei3d's top-hat differs from cle's")
    steps["gaussian_blur_3"], blurred = timed(
        lambda: cle.gaussian_blur(tophat, sigma_x=3, sigma_y=3, sigma_z=3)
    )
    own_blurred = cle.create_like(tophat)
    steps["own_gaussian_blur_3"], _ = timed(
        lambda: gaussian_blur(tophat, own_blurred, 3)
    )
    steps["detect_maxima_box"], spots = timed(lambda: cle.detect_maxima_box(blurred))
    own_spots = cle.create_like(tophat)
    steps["own_detect_maxima"], _ = timed(lambda: detect_maxima(blurred, own_spots))
    if (
        not (cle.pull(own_blurred) == cle.pull(blurred)).all()
        or not (cle.pull(own_spots) == cle.pull(spots)).all()
    ):
        raise AssertionError("nuclei3d's blur or maxima differ from cle's")
    steps["gaussian_blur_1"], outline = timed(
        lambda: cle.gaussian_blur(tophat, sigma_x=1, sigma_y=1, sigma_z=1)
    )
    steps["threshold_otsu"], binary = timed(lambda: cle.threshold_otsu(outline))
    own = cle.create(outline)
    steps["own_threshold_otsu"], _ = timed(lambda: threshold_otsu(outline, own))
    if not (cle.pull(own) == cle.pull(binary)).all():
        raise AssertionError("nuclei3d's Otsu threshold differs from cle's")
    steps["masked_voronoi"], _ = timed(
        lambda: cle.masked_voronoi_labeling(cle.binary_and(spots, binary), binary)
    )
    steps["relabel_sequential"], _ = timed(
        lambda: cle.relabel_sequential(cle.connected_components_labeling_box(spots))
    )
    steps["connected_components_box"], _ = timed(
        lambda: cle.connected_components_labeling_box(spots)
    )
    float_spots, points = cle.create_like(outline), cle.create_like(outline)
    cle.detect_maxima_box(blurred, float_spots)  # float32, as in our labeling
    steps["label_seed_points"], _ = timed(
        lambda: label_seed_points(float_spots, own, points)
    )
    steps["cle_voronoi_otsu_labeling"], cle_labels = timed(
        lambda: cle.voronoi_otsu_labeling(tophat, spot_sigma=3, outline_sigma=1)
    )
    steps["voronoi_otsu_labeling"], labels = timed(
        lambda: voronoi_otsu_labeling(tophat, 3, 1)
    )
    if not (cle.pull(labels) == cle.pull(cle_labels)).all():
        raise AssertionError("nuclei3d's Voronoi-Otsu labels differ from cle's")
    steps["pinned_pull_labels"], host_labels = timed(lambda: pull(labels))
    steps["segment_nuclei_to_host"], _ = timed(
        lambda: segment_nuclei(tophat, 1.0, spot_sigma_um=3, outline_sigma_um=1)
    )
    steps["measure_numpy"], _ = timed(
        lambda: measure_nuclei(host_labels.astype("uint16"), host, (1.0,) * 3)
    )
    steps["run_pipeline"], _ = timed(
        lambda: pipeline.run_pipeline(image, VOXEL, pull_intermediates=False)
    )
    return steps


def cprofile_pipeline(image, runs, device, top=40):
    """Print the `top` functions by own time over `runs` pipelines on `image`."""
    import cProfile
    import pstats

    from nuclei3d import pipeline

    pipeline.run_pipeline(image, VOXEL, pull_intermediates=False)  # builds kernels
    device.queue.finish()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(runs):
        pipeline.run_pipeline(image, VOXEL, pull_intermediates=False)
    device.queue.finish()
    profiler.disable()
    print(f"cProfile of {runs} pipelines on {'x'.join(map(str, image.shape))}")
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.sort_stats("tottime").print_stats(top)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--large", action="store_true")
    parser.add_argument("--device", default="")
    parser.add_argument("--cprofile", type=int, default=0, metavar="N")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)

    import pyclesperanto_prototype as cle

    from nuclei3d.demo import make_demo_stack
    from nuclei3d.device import select_device

    choice = select_device(args.device)
    shapes = [(86, 396, 393)] + ([(172, 1584, 1572)] if args.large else [])
    report = {"device": choice.name}
    for shape in shapes:
        nuclei = 60 * (16 if shape[1] > 400 else 1)
        image, _ = make_demo_stack(shape=shape, voxel_size_um=VOXEL, n_nuclei=nuclei)
        repeats = args.repeats if shape[1] < 1000 else 3
        report["x".join(map(str, shape))] = profile(image, repeats, cle.get_device())
        if args.cprofile:
            cprofile_pipeline(image, args.cprofile, cle.get_device())
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return report


if __name__ == "__main__":
    main()
