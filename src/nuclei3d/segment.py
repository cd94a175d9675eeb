"""Stage 4: label nuclei with Voronoi-Otsu labeling."""

from __future__ import annotations

import numpy as np

from .io import as_label_dtype

__all__ = ["grow_until_stable", "run_stage", "segment_nuclei", "voronoi_otsu_labeling"]

KERNEL = "grow_labels.cl"  # in src/nuclei3d/kernels/
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


def voronoi_otsu_labeling(source, spot_sigma, outline_sigma):
    """``cle.voronoi_otsu_labeling`` with its two loops in :func:`grow_until_stable`.

    The same steps and the same labels as pyclesperanto-prototype 0.24's function
    (tests/test_segment.py compares them), with one device read per
    ``STEPS_PER_CHECK`` growth steps instead of one per step.

    Parameters
    ----------
    source : pyclesperanto_prototype.OCLArray
        3D isotropic stack on the device.
    spot_sigma, outline_sigma : float
        Gaussian sigmas in voxels.

    Returns
    -------
    pyclesperanto_prototype.OCLArray
        uint32 labels.
    """
    import pyclesperanto_prototype as cle

    temp = cle.create(source)
    cle.gaussian_blur(source, temp, spot_sigma, spot_sigma, spot_sigma)
    spots = cle.create(source)
    cle.detect_maxima_box(temp, spots, 0, 0, 0)
    cle.gaussian_blur(source, temp, outline_sigma, outline_sigma, outline_sigma)
    segmentation = cle.create(source)
    cle.threshold_otsu(temp, segmentation)
    binary = cle.binary_and(spots, segmentation)

    # cle.connected_components_labeling_box(binary)
    seeds, other = cle.create_like(temp), cle.create_like(temp)
    cle.set_non_zero_pixels_to_pixel_index(binary, seeds)
    cle.set(other, 0)
    seeds, _ = grow_until_stable(seeds, other, MIN_BOX)
    components = cle.create_like(temp)
    cle.relabel_sequential(seeds, components)

    # cle.masked_voronoi_labeling(binary, segmentation, temp)
    start = cle.create_like(temp)
    cle.add_image_and_scalar(segmentation, start, -1)  # -1 outside the mask
    cle.add_images(start, components, other)
    grown, _ = grow_until_stable(other, start, MAX_BOX_DIAMOND)
    cle.mask(grown, segmentation, temp)
    labels = cle.create_labels_like(source)
    cle.mask(temp, segmentation, labels)
    return labels


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
    )
    return labels if on_device else as_label_dtype(pull(labels))


def run_stage(stack, device, log):
    """Stage segment: Voronoi-Otsu labeling (:func:`segment_nuclei`)."""
    from .job import transform_stack

    p = stack.params
    _, labels = transform_stack(
        stack,
        device,
        8,
        lambda image, um: segment_nuclei(
            image,
            um,
            spot_sigma_um=p["spot_sigma_um"],
            outline_sigma_um=p["outline_sigma_um"],
        ),
    )
    log.info("%s: %d nuclei", stack.name, labels.max())
