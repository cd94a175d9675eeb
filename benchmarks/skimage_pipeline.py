"""The same steps on the CPU with scikit-image and SciPy: what a user without a GPU
would write. One process per core (``multiprocessing.Pool``), one stack per task.

Steps, as the seed notebook and the workflow (parameters of ``config.yaml``):

1. resample to isotropic 1 µm voxels: ``scipy.ndimage.zoom``, order 0 (nearest
   neighbour, like ``cle.scale``);
2. equalize slice means: every z slice times ``stack_mean / slice_mean``
   (vectorised; the direction that corrects the decay, as ``nuclei3d.equalize``);
3. top-hat with a box footprint of radius 5 µm: ``scipy.ndimage.white_tophat``
   with ``size = 2 r + 1`` (separable min/max filters);
4. Voronoi-Otsu labeling as scikit-image users write it: Gaussian with the spot
   sigma (3 µm), local maxima (equal to a 3×3×3 maximum filter, like
   ``cle.detect_maxima_box``), Gaussian with the outline sigma (1 µm) and an Otsu
   threshold for the mask, then a watershed of the inverted spot-blurred image from
   the maxima inside the mask;
5. per-nucleus statistics with ``skimage.measure.regionprops_table``;

plus reading the stack (tifffile) and writing the labels (TIFF) and the table (CSV).

Run as a script (``benchmarks/benchmark.py`` runs it)::

    python benchmarks/skimage_pipeline.py --processes 16 --json sk.json \\
        --out-dir labels/ a.tif b.tif
"""

from __future__ import annotations

import time

_PROCESS_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
from multiprocessing import Pool  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tifffile  # noqa: E402
from scipy import ndimage  # noqa: E402
from skimage import filters, measure, segmentation  # noqa: E402

_IMPORTED = time.perf_counter()

# The seed's voxel size (z, y, x) in µm, and config.yaml's parameters.
VOXEL_SIZE_UM = (1.0, 0.202, 0.202)
TARGET_UM = 1.0
RADIUS_UM = 5.0
SPOT_SIGMA_UM = 3.0
OUTLINE_SIGMA_UM = 1.0
PROPERTIES = (
    "label",
    "area",
    "centroid",
    "bbox",
    "intensity_mean",
    "intensity_min",
    "intensity_max",
    "intensity_std",
)


def resample_isotropic(image, voxel_size_um, target_um=TARGET_UM):
    """Nearest-neighbour zoom to cubic voxels of `target_um`; float32."""
    factors = [v / target_um for v in voxel_size_um]
    return ndimage.zoom(image, factors, order=0).astype(np.float32)


def equalize_slice_means(image):
    """Scale every z slice so its mean equals the stack's mean."""
    means = image.mean(axis=(1, 2), dtype=np.float64)
    factors = np.ones_like(means)
    filled = means > 0
    factors[filled] = means.mean() / means[filled]
    return image * factors.astype(np.float32)[:, np.newaxis, np.newaxis]


def subtract_background(image, radius):
    """White top-hat with a (2 r + 1)³ box."""
    return ndimage.white_tophat(image, size=2 * radius + 1)


def voronoi_otsu_labeling(image, spot_sigma, outline_sigma):
    """Seeds from spot-blurred maxima, mask from Otsu, watershed inside the mask."""
    spots = filters.gaussian(image, sigma=spot_sigma, preserve_range=True)
    maxima = spots == ndimage.maximum_filter(spots, size=3)
    outline = filters.gaussian(image, sigma=outline_sigma, preserve_range=True)
    mask = outline > filters.threshold_otsu(outline)
    markers, _ = ndimage.label(maxima & mask)
    return segmentation.watershed(-spots, markers, mask=mask)


def measure_nuclei(labels, intensity):
    """One row per nucleus: label, voxel count, centroid, bbox, intensity stats."""
    table = pd.DataFrame(
        measure.regionprops_table(
            labels, intensity_image=intensity, properties=PROPERTIES
        )
    )
    table["intensity_sum"] = table["area"] * table["intensity_mean"]
    return table


def process_stack(task):
    """Read, segment, measure and write one stack; return its timings."""
    in_path, out_path, voxel_size_um = task
    steps = {}
    clock = [time.perf_counter()]
    begin = clock[0]

    def tick(name):
        now = time.perf_counter()
        steps[name] = now - clock[0]
        clock[0] = now

    image = tifffile.imread(in_path)
    tick("read")
    resampled = resample_isotropic(image, voxel_size_um)
    tick("resample")
    equalized = equalize_slice_means(resampled)
    tick("equalize")
    radius = round(RADIUS_UM / TARGET_UM)
    background = subtract_background(equalized, radius)
    tick("background")
    labels = voronoi_otsu_labeling(
        background, SPOT_SIGMA_UM / TARGET_UM, OUTLINE_SIGMA_UM / TARGET_UM
    )
    tick("segment")
    table = measure_nuclei(labels, resampled)
    tick("measure")
    largest = int(labels.max())
    tifffile.imwrite(
        out_path, labels.astype(np.uint16 if largest < 2**16 else np.uint32)
    )
    table.to_csv(Path(out_path).with_suffix(".csv"), index=False)
    tick("write")
    return {
        "stack": str(in_path),
        "seconds": time.perf_counter() - begin,
        "steps": steps,
        "nuclei": len(table),
        "pid": os.getpid(),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stacks", nargs="+", help="input TIFF stacks")
    parser.add_argument("--out-dir", required=True, help="folder for label TIFFs")
    parser.add_argument("--json", required=True, help="where to write the timings")
    parser.add_argument(
        "--processes", type=int, default=os.cpu_count(), help="worker processes"
    )
    parser.add_argument(
        "--voxel-size",
        type=float,
        nargs=3,
        default=VOXEL_SIZE_UM,
        metavar=("Z", "Y", "X"),
        help="voxel size of the stacks in µm (default: the seed's)",
    )
    args = parser.parse_args(argv)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = [
        (path, out_dir / f"{Path(path).parent.name}.tif", tuple(args.voxel_size))
        for path in args.stacks
    ]
    start = time.perf_counter()
    if args.processes > 1:
        with Pool(args.processes) as pool:
            stacks = pool.map(process_stack, tasks, chunksize=1)
    else:
        stacks = [process_stack(task) for task in tasks]
    end = time.perf_counter()
    result = {
        "processes": args.processes,
        "import_s": _IMPORTED - _PROCESS_START,
        "pool_s": end - start,
        "main_s": end - _PROCESS_START,
        "stacks": stacks,
        "median_stack_s": statistics.median(s["seconds"] for s in stacks),
    }
    Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
