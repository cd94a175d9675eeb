"""The seed notebook's pipeline, as written, in a loop over stacks (one process).

This is the reference a user would otherwise run: the clEsperanto notebook
*Segmentation_3D* (``demo/segmentation/Segmentation_3D.ipynb`` in
https://github.com/clEsperanto/pyclesperanto_prototype) turned into a loop,
with its statements kept as they are, quirks included:

- the equalization loop's factor is ``mean_slice / mean_stack``: it *amplifies* the
  depth decay instead of correcting it (``nuclei3d.equalize`` uses the inverse);
- ``a_slice`` is created as ``[shape[1], shape[0]]`` (y, z) instead of
  ``[shape[1], shape[2]]`` (y, x), so every slice is copied into a buffer of the
  wrong width and its mean includes padding;
- the overlay loop walks ``range(0, resampled.shape[2], 20)`` (the x size) as z.

What the notebook leaves out and a batch user adds: reading each stack
(``skimage.io.imread``, as the notebook), ``statistics_of_labelled_pixels`` for the
per-nucleus table, and writing the labels as TIFF. The notebook's plotting
(``show``, ``plt.subplots``, ``cle.imshow``) and napari are left out; the overlay
loop's kernels run and their results are pulled to the host, which is what
``cle.imshow`` does first.

Run as a script it processes the stacks given on the command line in one process
and writes its timings as JSON (``benchmarks/benchmark.py`` runs it)::

    python benchmarks/seed_loop.py --json seed.json --out-dir labels/ a.tif b.tif

``--kernel-cache DIR`` points the OpenCL kernel caches at DIR
(:func:`nuclei3d.kernel_cache.use_kernel_cache`); an empty DIR gives a cold start.
"""

from __future__ import annotations

import time

_PROCESS_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
from pathlib import Path  # noqa: E402

# The seed's voxel size (BBBC032 crop), as the notebook hard-codes it.
SEED_VOXEL_SIZE = {"voxel_size_x": 0.202, "voxel_size_y": 0.202, "voxel_size_z": 1}


def segment_like_seed(
    input_image, voxel_size_x=0.202, voxel_size_y=0.202, voxel_size_z=1, tick=None
):
    """The notebook's cells from resampling to the overlay loop, as written.

    Parameters
    ----------
    input_image : numpy.ndarray
        The stack (z, y, x) as read from disk.
    voxel_size_x, voxel_size_y, voxel_size_z : float
        Its voxel size in µm (the notebook hard-codes 0.202, 0.202, 1).
    tick : callable, optional
        ``tick(step_name)`` is called after each notebook cell (the benchmark
        synchronises the device and reads a clock there); not part of the seed.

    Returns
    -------
    resampled, segmented : pyclesperanto_prototype arrays (on the device)
        The isotropic stack and its labels.
    """
    import pyclesperanto_prototype as cle

    tick = tick or (lambda name: None)

    # --- seed: resample to isotropic voxels ------------------------------------
    resampled = cle.scale(
        input_image,
        factor_x=voxel_size_x,
        factor_y=voxel_size_y,
        factor_z=voxel_size_z,
        auto_size=True,
    )
    tick("resample")

    # --- seed: intensity correction, one slice at a time -----------------------
    equalized_intensities_stack = cle.create_like(resampled)
    a_slice = cle.create([resampled.shape[1], resampled.shape[0]])  # sic: (y, z)

    num_slices = resampled.shape[0]
    mean_intensity_stack = cle.mean_of_all_pixels(resampled)

    corrected_slice = None
    for z in range(0, num_slices):
        # get a single slice out of the stack
        cle.copy_slice(resampled, a_slice, z)
        # measure its intensity
        mean_intensity_slice = cle.mean_of_all_pixels(a_slice)
        # correct the intensity (sic: inverted; stack/slice would correct the decay)
        correction_factor = mean_intensity_slice / mean_intensity_stack
        corrected_slice = cle.multiply_image_and_scalar(
            a_slice, corrected_slice, correction_factor
        )
        # copy slice back in a stack
        cle.copy_slice(corrected_slice, equalized_intensities_stack, z)
    tick("equalize")

    # --- seed: background subtraction ------------------------------------------
    backgrund_subtracted = cle.top_hat_box(
        equalized_intensities_stack, radius_x=5, radius_y=5, radius_z=5
    )
    tick("background")

    # --- seed: segmentation ----------------------------------------------------
    segmented = cle.voronoi_otsu_labeling(
        backgrund_subtracted, spot_sigma=3, outline_sigma=1
    )
    tick("segment")

    # --- seed: outlines over intensity, every 20th slice (plots left out) -------
    a_slice = cle.create([resampled.shape[1], resampled.shape[0]])
    segmented_slice = cle.create([resampled.shape[1], resampled.shape[0]])

    for z in range(0, resampled.shape[2], 20):  # sic: shape[2] (x) walked as z
        label_outlines = None
        combined = None

        # get a single slice from the intensity image and the segmented label image
        cle.copy_slice(resampled, a_slice, z)
        cle.copy_slice(segmented, segmented_slice, z)

        # determine outlines around labeled objects
        label_outlines = cle.detect_label_edges(segmented_slice, label_outlines)

        # combine both images
        outline_intensity_factor = cle.maximum_of_all_pixels(a_slice)
        combined = cle.add_images_weighted(
            a_slice, label_outlines, combined, 1.0, outline_intensity_factor
        )

        # visualisation: cle.imshow pulls each image to the host first
        for picture in (a_slice, segmented_slice, combined):
            cle.pull(picture)
    tick("overlay")
    return resampled, segmented


def process_stack(in_path, out_path, tick=None):
    """Read one stack, run the seed on it, measure its nuclei, write its labels.

    Returns
    -------
    int
        Number of nuclei (largest label).
    """
    import numpy as np
    import pyclesperanto_prototype as cle
    import tifffile
    from skimage.io import imread

    tick = tick or (lambda name: None)
    input_image = imread(in_path)
    tick("read")
    resampled, segmented = segment_like_seed(input_image, **SEED_VOXEL_SIZE, tick=tick)
    statistics_table = cle.statistics_of_labelled_pixels(resampled, segmented)
    tick("statistics")
    labels = cle.pull(segmented)
    tifffile.imwrite(out_path, labels.astype(np.uint32))
    tick("write")
    return len(statistics_table["label"])


def _finish():
    import pyclesperanto_prototype as cle

    cle.get_device().queue.finish()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stacks", nargs="+", help="input TIFF stacks")
    parser.add_argument("--out-dir", required=True, help="folder for label TIFFs")
    parser.add_argument("--json", required=True, help="where to write the timings")
    parser.add_argument("--kernel-cache", help="OpenCL kernel cache folder")
    parser.add_argument("--device", default="", help="OpenCL device name pattern")
    args = parser.parse_args(argv)

    # Benchmark harness: kernel cache and device, the same way the workflow's jobs
    # choose them. The seed itself would take cle's default device.
    if args.kernel_cache:
        from nuclei3d.kernel_cache import use_kernel_cache

        use_kernel_cache(args.kernel_cache)
    import pyclesperanto_prototype as cle  # noqa: F401
    import skimage.io  # noqa: F401
    import tifffile  # noqa: F401

    from nuclei3d.device import select_device

    imported = time.perf_counter()
    choice = select_device(args.device)
    _finish()
    device_ready = time.perf_counter()

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stacks = []
    loop_start = time.perf_counter()
    for path in args.stacks:
        steps = {}
        clock = [time.perf_counter()]

        def tick(name, steps=steps, clock=clock):
            _finish()
            now = time.perf_counter()
            steps[name] = steps.get(name, 0.0) + now - clock[0]
            clock[0] = now

        begin = clock[0]
        nuclei = process_stack(path, out_dir / f"{Path(path).parent.name}.tif", tick)
        stacks.append(
            {
                "stack": str(path),
                "seconds": time.perf_counter() - begin,
                "steps": steps,
                "nuclei": nuclei,
            }
        )
    loop_end = time.perf_counter()
    result = {
        "device": {"name": choice.name, "platform": choice.platform},
        "import_s": imported - _PROCESS_START,
        "device_s": device_ready - imported,
        "loop_s": loop_end - loop_start,
        "main_s": loop_end - _PROCESS_START,
        "stacks": stacks,
        "median_stack_s": statistics.median(s["seconds"] for s in stacks),
        "pid": os.getpid(),
    }
    Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
