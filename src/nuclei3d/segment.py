"""Stage 4: label nuclei with Voronoi-Otsu labeling."""

from __future__ import annotations

import numpy as np

from .io import as_label_dtype

# The stage runs OpenCL kernels: its job opens a device first (nuclei3d.job).
OPENCL = True

__all__ = [
    "detect_maxima",
    "gaussian_blur",
    "grow_until_stable",
    "label_seed_points",
    "run_stage",
    "seed_components",
    "segment_nuclei",
    "threshold_otsu",
    "voronoi_otsu_labeling",
]

KERNEL = "grow_labels.cl"  # in src/nuclei3d/kernels/
HISTOGRAM_KERNEL = "otsu_histogram.cl"
SEED_KERNEL = "seed_points.cl"
FILTERS = "filters.cl"
# Seed voxels read back at most; with more, labels grow on the device as in cle.
SEED_CAPACITY = 1 << 20
OTSU_BINS = 256  # fixed in the kernel file and in cle.threshold_otsu
# Steps launched between two looks at the change flags: each look waits for the
# device; a step after the loop has converged returns at once (grow_labels.cl).
STEPS_PER_CHECK = 8
MIN_BOX, MAX_BOX_DIAMOND = 0, 1  # modes of grow_until_stable ...
_MAX_DIAMOND = 2  # ... and of the kernel, which does MAX_BOX_DIAMOND's odd steps


def grow_until_stable(first, second, mode):
    """Repeat a 3x3x3 label-growth step until a step changes nothing.

    The loops of pyclesperanto's ``connected_components_labeling_box`` (mode
    ``MIN_BOX``: every non-zero voxel takes the smallest non-zero label around
    it) and ``masked_voronoi_labeling`` (mode ``MAX_BOX_DIAMOND``: every zero voxel
    takes the largest label around it, box and diamond neighbourhoods in turn),
    with the same result. Those loops read a flag back from the device after
    every step; here ``STEPS_PER_CHECK`` steps run between two reads
    (``kernels/grow_labels.cl`` makes steps after the stopping one do nothing).

    Parameters
    ----------
    first, second : pyclesperanto_prototype.OCLArray
        float32 (z, y, x) ping-pong buffers; `first` holds the start, `second`
        is overwritten.
    mode : int
        ``MIN_BOX`` or ``MAX_BOX_DIAMOND``.

    Returns
    -------
    tuple of (pyclesperanto_prototype.OCLArray, int)
        The buffer holding the result, and the number of steps pyclesperanto's
        loop would have run.
    """
    import pyopencl as cl

    from .device import project_kernel

    if first.dtype != np.float32 or second.dtype != np.float32:
        raise TypeError("grow_until_stable works on float32 images")
    queue = first.queue
    kernel = project_kernel(first.context, KERNEL, "grow_labels")
    size = tuple(int(n) for n in first.shape[::-1])
    flags = np.zeros(STEPS_PER_CHECK, np.int32)
    device_flags = cl.Buffer(first.context, cl.mem_flags.READ_WRITE, flags.nbytes)
    steps = 0
    while True:
        cl.enqueue_fill_buffer(queue, device_flags, np.int32(0), 0, flags.nbytes)
        for step in range(STEPS_PER_CHECK):
            even = (steps + step) % 2 == 0
            # connected components: box every step; Voronoi: box on even steps
            kind = mode if mode == MIN_BOX or even else _MAX_DIAMOND
            src, dst = (first, second) if even else (second, first)
            kernel(
                queue,
                size,
                None,
                src.data,
                dst.data,
                device_flags,
                np.int32(step),
                np.int32(kind),
            )
        cl.enqueue_copy(queue, flags, device_flags)  # blocking
        unchanged = np.flatnonzero(flags == 0)
        if unchanged.size:
            # both buffers hold the result after the first unchanged step
            return first, steps + int(unchanged[0]) + 1
        steps += STEPS_PER_CHECK


def _filter(name, shape_source, global_size, *args):
    """Launch kernel `name` of ``kernels/filters.cl`` (buffers given as images)."""
    from pyopencl.array import Array

    from .device import project_kernel

    images = [arg for arg in args if isinstance(arg, Array)]
    if any(image.dtype != np.float32 for image in images):
        raise TypeError(f"{name} works on float32 images")
    kernel = project_kernel(shape_source.context, FILTERS, name)
    kernel(
        shape_source.queue,
        global_size,
        None,
        *(arg.data if isinstance(arg, Array) else arg for arg in args),
    )


def gaussian_blur(source, destination, sigma):
    """``cle.gaussian_blur(source, destination, sigma, sigma, sigma)``, same result.

    cle's kernel (its arithmetic in its order) along x, y and z, launched
    through pyopencl, with the tap weights worked out once per call instead of in
    every voxel (``exp`` per tap and voxel made cle's blur slow on CPUs: 265 ms
    for sigma 3 on a demo stack with PoCL on 2 cores).

    Parameters
    ----------
    source, destination : pyclesperanto_prototype.OCLArray
        float32 3D images of one shape.
    sigma : float
        Positive, in voxels.
    """
    import pyclesperanto_prototype as cle

    if not sigma > 0:
        raise ValueError(f"sigma ({sigma}) must be positive")
    taps = int(float(sigma) * 8.0)  # cle's sigma_to_kernel_size
    taps += 1 - taps % 2
    size = tuple(int(n) for n in source.shape[::-1])
    weights = cle.create((taps,), np.float32)
    _filter(
        "gaussian_weights", source, (taps,), weights, np.int32(taps), np.float32(sigma)
    )
    first, second = cle.create_like(source), cle.create_like(source)
    for axis, src, dst in (
        (0, source, second),
        (1, second, first),
        (2, first, destination),
    ):
        _filter(
            "gaussian_blur_axis",
            source,
            size,
            src,
            dst,
            weights,
            np.int32(axis),
            np.int32(taps),
        )
    return destination


def detect_maxima(source, destination):
    """``cle.detect_maxima_box(source, destination, 0, 0, 0)``, same result."""
    size = tuple(int(n) for n in source.shape[::-1])
    _filter("detect_maxima", source, size, source, destination)
    return destination


def threshold_otsu(source, destination):
    """``cle.threshold_otsu``: foreground above Otsu's threshold, same result.

    pyclesperanto-prototype 0.24 reads its device back three times (minimum,
    maximum, histogram) and builds the histogram with one work item per image
    row. Here two launches of ``kernels/otsu_histogram.cl`` find the range and
    the histogram, both are read back once, and the threshold comes from
    scikit-image's ``threshold_otsu`` of that histogram (the code cle copies).
    The counts are exact integers; cle adds its per-row counts in float32, which
    is exact below 2**24 voxels in a bin.

    Parameters
    ----------
    source : pyclesperanto_prototype.OCLArray
        float32 image.
    destination : pyclesperanto_prototype.OCLArray
        Receives 1 above the threshold, 0 elsewhere.

    Returns
    -------
    float
        The threshold.
    """
    import pyclesperanto_prototype as cle
    import pyopencl as cl
    from skimage.filters import threshold_otsu as otsu_of_histogram

    from .device import project_kernel

    if source.dtype != np.float32:
        raise TypeError("threshold_otsu works on float32 images")
    queue, context = source.queue, source.context
    n = np.uint32(source.size)
    local = 1 << (min(256, queue.device.max_work_group_size).bit_length() - 1)
    groups = int(min(1024, max(1, -(-int(n) // (local * 32)))))
    global_size = (groups * local,)
    extremes = cle.create((2,), np.int32)
    counts = cle.create((OTSU_BINS,), np.uint32)
    cl.enqueue_fill_buffer(queue, extremes.data, np.int32(2**31 - 1), 0, 4)
    cl.enqueue_fill_buffer(queue, extremes.data, np.int32(-(2**31)), 4, 4)
    cl.enqueue_fill_buffer(queue, counts.data, np.uint32(0), 0, 4 * OTSU_BINS)
    project_kernel(context, HISTOGRAM_KERNEL, "min_max")(
        queue,
        global_size,
        (local,),
        source.data,
        n,
        extremes.data,
        cl.LocalMemory(8 * local),
    )
    project_kernel(context, HISTOGRAM_KERNEL, "histogram")(
        queue,
        global_size,
        (local,),
        source.data,
        n,
        extremes.data,
        counts.data,
        cl.LocalMemory(4 * OTSU_BINS),
    )
    keys, hist = np.empty(2, np.int32), np.empty(OTSU_BINS, np.uint32)
    cl.enqueue_copy(queue, keys, extremes.data, is_blocking=False)
    cl.enqueue_copy(queue, hist, counts.data)  # blocking: waits for both
    # the kernel's ordered keys back to float32; then cle's own arithmetic
    minimum, maximum = np.where(keys >= 0, keys, keys ^ 0x7FFFFFFF).view(np.float32)
    bin_centers = np.arange(OTSU_BINS) * (maximum - minimum) / 255 + minimum
    if minimum == maximum:  # one value, one bin: cle's threshold is that value
        threshold = minimum
    else:
        threshold = otsu_of_histogram(hist=(hist.astype(np.float32), bin_centers))
    _filter(
        "greater_constant",
        source,
        (source.size,),
        source,
        destination,
        np.float32(threshold),
    )
    return threshold


# neighbours after a voxel in flat (z, y, x) order: half of its 26
_FORWARD = [
    (dz, dy, dx)
    for dz in (0, 1)
    for dy in (-1, 0, 1)
    for dx in (-1, 0, 1)
    if (dz, dy, dx) > (0, 0, 0)
]


def seed_components(indices, shape):
    """``cle.connected_components_labeling_box`` of a few voxels, on the host.

    cle numbers every non-zero voxel ``x * height * depth + y * depth + z + 1``
    (as float32), lets each take the smallest number of its 26-connected
    component, then numbers the components 1, 2, ... in the order of those
    smallest numbers (``relabel_sequential``). This does the same from the
    voxels' flat indices, with SciPy's connected components on their neighbour
    graph: for a few hundred seed points, instead of label growth over the
    whole image.

    Parameters
    ----------
    indices : array_like of int
        Flat (C order) indices of the non-zero voxels in an image of `shape`.
    shape : tuple of 3 int
        (depth, height, width).

    Returns
    -------
    indices : numpy.ndarray
        The indices, sorted (uint32).
    labels : numpy.ndarray
        float32 label of each.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    indices = np.unique(np.asarray(indices, np.int64))
    if not indices.size:
        return indices.astype(np.uint32), np.zeros(0, np.float32)
    depth, height, width = shape
    z, y, x = np.unravel_index(indices, shape)
    rows, columns = [], []
    for dz, dy, dx in _FORWARD:
        nz, ny, nx = z + dz, y + dy, x + dx
        inside = np.flatnonzero(
            (nz < depth) & (ny >= 0) & (ny < height) & (nx >= 0) & (nx < width)
        )
        target = (nz[inside] * height + ny[inside]) * width + nx[inside]
        at = np.minimum(np.searchsorted(indices, target), indices.size - 1)
        hit = indices[at] == target
        rows.append(inside[hit])
        columns.append(at[hit])
    rows, columns = np.concatenate(rows), np.concatenate(columns)
    graph = coo_matrix(
        (np.ones(rows.size, np.int8), (rows, columns)), (indices.size,) * 2
    )
    count, component = connected_components(graph, directed=False)
    number = (x * height * depth + y * depth + z + 1).astype(np.float32)
    smallest = np.full(count, np.inf, np.float32)
    np.minimum.at(smallest, component, number)
    _, rank = np.unique(smallest, return_inverse=True)  # equal numbers: one label
    return indices.astype(np.uint32), (rank + 1).astype(np.float32)[component]


def label_seed_points(spots, mask, out):
    """``cle.connected_components_labeling_box(cle.binary_and(spots, mask))``.

    The voxels non-zero in both are listed on the device
    (``kernels/seed_points.cl``) and read back, :func:`seed_components` labels
    them, and the labels are written into `out`: one read-back for a few
    hundred points, where cle grows labels over the whole image and reads its
    device back after every step and three times to renumber.

    Parameters
    ----------
    spots, mask : pyclesperanto_prototype.OCLArray
        float32 images of 0 and 1 (local maxima, foreground).
    out : pyclesperanto_prototype.OCLArray
        float32 image of the same shape; receives the labels.

    Returns
    -------
    int or None
        The number of labels; None, with `out` untouched, if there are more than
        ``SEED_CAPACITY`` such voxels.
    """
    import pyclesperanto_prototype as cle
    import pyopencl as cl

    from .device import project_kernel

    queue, context = spots.queue, spots.context
    n = spots.size
    capacity = min(n, SEED_CAPACITY)
    count = cle.create((1,), np.uint32)
    listed = cle.create((capacity,), np.uint32)
    cl.enqueue_fill_buffer(queue, count.data, np.uint32(0), 0, 4)
    project_kernel(context, SEED_KERNEL, "nonzero_in_both")(
        queue,
        (-(-n // 64) * 64,),
        None,
        spots.data,
        mask.data,
        np.uint32(n),
        count.data,
        listed.data,
        np.uint32(capacity),
    )
    found, head = np.empty(1, np.uint32), np.empty(min(capacity, 4096), np.uint32)
    cl.enqueue_copy(queue, head, listed.data, is_blocking=False)
    cl.enqueue_copy(queue, found, count.data)  # in-order queue: both are here
    found = int(found[0])
    if found > capacity:
        return None
    if found > head.size:
        head = np.empty(found, np.uint32)
        cl.enqueue_copy(queue, head, listed.data)
    indices, labels = seed_components(head[:found], spots.shape)
    cl.enqueue_fill_buffer(queue, out.data, np.float32(0), 0, out.nbytes)
    if found:
        device_indices = cle.create((found,), np.uint32)
        device_labels = cle.create((found,), np.float32)
        cl.enqueue_copy(queue, device_indices.data, indices)
        cl.enqueue_copy(queue, device_labels.data, labels)
        project_kernel(context, SEED_KERNEL, "scatter")(
            queue,
            (-(-found // 64) * 64,),
            None,
            device_indices.data,
            device_labels.data,
            np.uint32(found),
            out.data,
        )
    return int(labels.max()) if found else 0


def voronoi_otsu_labeling(source, spot_sigma, outline_sigma, *, compact=False):
    """``cle.voronoi_otsu_labeling`` with its two loops in :func:`grow_until_stable`.

    The same steps and the same labels as pyclesperanto-prototype 0.24's function
    (tests/test_segment.py compares them), with one device read per
    ``STEPS_PER_CHECK`` growth steps instead of one per step.

    Parameters
    ----------
    source : pyclesperanto_prototype.OCLArray
        3D isotropic stack on the device; other dtypes than float32 are made
        float32 first (cle would blur them in their own dtype).
    spot_sigma, outline_sigma : float
        Gaussian sigmas in voxels.
    compact : bool, optional
        uint16 labels when there are fewer than 65536 (half the bytes to pull).

    Returns
    -------
    pyclesperanto_prototype.OCLArray
        uint32 labels (uint16 with `compact`, where they fit).
    """
    import pyclesperanto_prototype as cle

    if source.dtype != np.float32:  # cle would blur in the source's dtype
        source = cle.copy(source, cle.create(source.shape, np.float32))
    temp = cle.create(source)
    gaussian_blur(source, temp, spot_sigma)
    spots = cle.create(source)
    detect_maxima(temp, spots)
    gaussian_blur(source, temp, outline_sigma)
    segmentation = cle.create(source)
    threshold_otsu(temp, segmentation)

    # cle.connected_components_labeling_box(cle.binary_and(spots, segmentation))
    components, other = cle.create_like(temp), cle.create_like(temp)
    count = label_seed_points(spots, segmentation, components)
    if count is None:
        seeds = cle.create_like(temp)
        cle.set_non_zero_pixels_to_pixel_index(
            cle.binary_and(spots, segmentation), seeds
        )
        cle.set(other, 0)
        seeds, _ = grow_until_stable(seeds, other, MIN_BOX)
        cle.relabel_sequential(seeds, components)
        count = int(cle.maximum_of_all_pixels(components))

    # cle.masked_voronoi_labeling(binary, segmentation, temp), then the mask
    start = cle.create_like(temp)
    _each_voxel("voronoi_start", segmentation, components, other)
    grown, _ = grow_until_stable(other, start, MAX_BOX_DIAMOND)
    if compact and count < 2**16:
        labels = cle.create(source.shape, np.uint16)
        _each_voxel("mask_labels16", grown, segmentation, labels)
    else:
        labels = cle.create_labels_like(source)
        _each_voxel("mask_labels", grown, segmentation, labels)
    return labels


def _each_voxel(name, *images):
    """Launch kernel `name` of ``grow_labels.cl``, one work item per voxel."""
    from .device import project_kernel

    first = images[0]
    project_kernel(first.context, KERNEL, name)(
        first.queue, (first.size,), None, *(image.data for image in images)
    )


def segment_nuclei(
    image, voxel_size_um, *, spot_sigma_um=3.0, outline_sigma_um=1.0, on_device=False
):
    """Label nuclei in an isotropic stack (:func:`voronoi_otsu_labeling`).

    Parameters
    ----------
    image : array_like or pyclesperanto_prototype.OCLArray
        3D isotropic, background-subtracted stack (z, y, x), host or device.
    voxel_size_um : float
        Edge of its (cubic) voxels in µm.
    spot_sigma_um : float, optional
        Gaussian sigma (µm) for finding nucleus centres; larger merges close
        nuclei, smaller splits big ones.
    outline_sigma_um : float, optional
        Gaussian sigma (µm) for the Otsu foreground mask; larger gives smoother,
        rounder outlines.
    on_device : bool, optional
        Return the device label image (uint32) instead of pulling it.

    Returns
    -------
    numpy.ndarray or pyclesperanto_prototype.OCLArray
        Labels, 0 = background, 1..n = nuclei; on the host uint16 (uint32 beyond
        65535).
    """
    from .device import on_device as to_device
    from .device import pull

    if not (voxel_size_um > 0 and spot_sigma_um > 0 and outline_sigma_um > 0):
        raise ValueError(
            f"`spot_sigma_um` ({spot_sigma_um}), `outline_sigma_um` "
            f"({outline_sigma_um}) and `voxel_size_um` ({voxel_size_um}) must be "
            "positive"
        )
    labels = voronoi_otsu_labeling(
        to_device(image),
        spot_sigma=spot_sigma_um / voxel_size_um,
        outline_sigma=outline_sigma_um / voxel_size_um,
        compact=not on_device,
    )
    return labels if on_device else as_label_dtype(pull(labels))


def run_stage(stack, log):
    """Stage segment: Voronoi-Otsu labeling (:func:`segment_nuclei`)."""
    from .job import transform_stack

    p = stack.params
    _, labels = transform_stack(
        stack,
        8,
        lambda image, um: segment_nuclei(
            image,
            um,
            spot_sigma_um=p["spot_sigma_um"],
            outline_sigma_um=p["outline_sigma_um"],
        ),
    )
    log.info("%s: %d nuclei", stack.name, labels.max())
