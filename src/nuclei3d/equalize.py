"""Stage 2: equalize the mean intensity of every z slice (depth decay)."""

from __future__ import annotations

import numpy as np

# The stage runs OpenCL kernels: its job opens a device first (nuclei3d.job).
OPENCL = True

__all__ = [
    "depth_profile",
    "equalize_gpu",
    "equalize_slice_means",
    "multiply_by_slice_factors",
    "run_stage",
    "slice_correction_factors",
    "slice_sums_gpu",
]

GPU_KERNELS = "equalize_slices.cl"  # the GPU path's kernels, in device.KERNELS


def slice_correction_factors(slice_means):
    """Factors that bring every slice's mean to the stack mean.

    The factor of slice ``z`` is ``stack_mean / slice_mean[z]`` (the seed notebook
    has it inverted). Slices with mean 0 (empty) keep factor 1.

    Parameters
    ----------
    slice_means : array_like
        Mean intensity of each z slice.

    Returns
    -------
    numpy.ndarray
        float32 factor per slice.

    Examples
    --------
    >>> slice_correction_factors([2.0, 1.0, 0.0]).tolist()
    [0.5, 1.0, 1.0]
    """
    means = np.asarray(slice_means, dtype=np.float64)
    stack_mean = means.mean() if means.size else 0.0
    factors = np.ones_like(means)
    filled = means > 0
    factors[filled] = stack_mean / means[filled]
    return factors.astype(np.float32)


def depth_profile(resampled, equalized):
    """Mean intensity of every z slice before and after equalization.

    Parameters
    ----------
    resampled, equalized : numpy.ndarray
        3D stacks (z, y, x) of the same shape.

    Returns
    -------
    dict
        ``z`` (slice index), ``mean_resampled`` and ``mean_equalized`` arrays.

    Examples
    --------
    >>> stack = np.arange(8.0).reshape(2, 2, 2)
    >>> depth_profile(stack, stack)["mean_resampled"].tolist()
    [1.5, 5.5]
    """
    resampled, equalized = np.asarray(resampled), np.asarray(equalized)
    if resampled.shape != equalized.shape or resampled.ndim != 3:
        raise ValueError(
            f"`resampled` (shape {resampled.shape}) and `equalized` (shape "
            f"{equalized.shape}) must be 3D stacks of the same shape"
        )
    return {
        "z": np.arange(resampled.shape[0]),
        "mean_resampled": resampled.mean(axis=(1, 2)),
        "mean_equalized": equalized.mean(axis=(1, 2)),
    }


def slice_sums_gpu(stack):
    """Sum of every z slice of a float32 device stack (``kernels/equalize_slices.cl``).

    Two launches straight through pyopencl: the same sums, to the bit, as
    ``cle.sum_y_projection(cle.sum_x_projection(stack))``.

    Parameters
    ----------
    stack : pyclesperanto_prototype.OCLArray
        float32 stack (z, y, x) on the device.

    Returns
    -------
    pyclesperanto_prototype.OCLArray
        float32 (1, z) image.
    """
    import pyclesperanto_prototype as cle

    from .device import project_kernel

    depth, height, width = stack.shape
    rows = cle.create((height, depth), np.float32)
    sums = cle.create((1, depth), np.float32)
    project_kernel(stack.context, GPU_KERNELS, "row_sums")(
        stack.queue, (depth, height), None, stack.data, rows.data, np.int32(width)
    )
    project_kernel(stack.context, GPU_KERNELS, "slice_sums")(
        stack.queue, (depth,), None, rows.data, sums.data, np.int32(height)
    )
    return sums


def equalize_gpu(stack):
    """Equalize a float32 device stack in three launches: the GPU path.

    :func:`slice_sums_gpu`, then ``multiply_by_slice_factor`` of
    ``kernels/equalize_slices.cl``: each voxel works out its slice's factor from
    all the sums (one launch; free on a GPU). Launched straight through pyopencl:
    pyclesperanto's set-up of a launch costs 0.3-0.6 ms on the H100 nodes.

    Parameters
    ----------
    stack : pyclesperanto_prototype.OCLArray
        float32 stack (z, y, x) on the device.

    Returns
    -------
    pyclesperanto_prototype.OCLArray
    """
    import pyclesperanto_prototype as cle

    from .device import project_kernel

    sums = slice_sums_gpu(stack)
    out = cle.create(stack.shape, np.float32)
    depth, height, width = stack.shape
    project_kernel(stack.context, GPU_KERNELS, "multiply_by_slice_factor")(
        stack.queue,
        (width, height, depth),
        None,
        stack.data,
        sums.data,
        out.data,
        np.int32(depth),
    )
    return out


def multiply_by_slice_factors(stack, sums):
    """Device kernels: `stack` times the :func:`slice_correction_factors` of `sums`.

    The CPU path: one kernel per slice works out the factors first
    (``kernels/slice_factors.cl``), then ``kernels/multiply_by_factor_list.cl``
    applies them. (Working the factor out in every voxel, as :func:`equalize_gpu`
    does, costs 100 ms a stack with PoCL on 2 cores.)

    Parameters
    ----------
    stack : pyclesperanto_prototype.OCLArray
        float32 stack (z, y, x) on the device.
    sums : pyclesperanto_prototype.OCLArray
        Its slice sums, a (1, z) image.

    Returns
    -------
    pyclesperanto_prototype.OCLArray
    """
    import pyclesperanto_prototype as cle

    from .device import KERNELS

    out = cle.create(stack.shape, np.float32)
    factors = cle.create(sums.shape, np.float32)
    cle.execute(
        __file__,
        str(KERNELS / "slice_factors.cl"),
        "slice_factors",
        sums.shape,
        {"sums": sums, "dst": factors},
    )
    cle.execute(
        __file__,
        str(KERNELS / "multiply_by_factor_list.cl"),
        "multiply_by_factor_list",
        out.shape,
        {"src": stack, "factors": factors, "dst": out},
    )
    return out


def equalize_slice_means(image, *, enabled=True, on_device=False):
    """Scale every z slice so its mean intensity equals the mean of the stack.

    Compensates the intensity decay with depth. Whole-stack kernels on the
    current OpenCL device, no slice loop and no host round trip. On a GPU,
    :func:`equalize_gpu`: two kernels sum every slice and a third multiplies every
    voxel by its slice's factor of :func:`slice_correction_factors` (stack mean /
    slice mean), worked out in the kernel. On a CPU device, two projections sum
    the slices and :func:`multiply_by_slice_factors` works the factors out once
    per slice, then applies them.

    Parameters
    ----------
    image : array_like or pyclesperanto_prototype.OCLArray
        3D stack (z, y, x) of non-negative intensities, on the host or device.
    enabled : bool, optional
        If False, return the stack unchanged (as float32).
    on_device : bool, optional
        Return the device image instead of pulling it to the host.

    Returns
    -------
    numpy.ndarray or pyclesperanto_prototype.OCLArray
        float32 stack, same shape. Empty slices (mean 0) are left untouched.
    """
    import pyclesperanto_prototype as cle

    from .device import as_stack, pull
    from .device import on_device as to_device

    image = as_stack(image)
    if not enabled and not on_device and isinstance(image, np.ndarray):
        return image.astype(np.float32, copy=False)
    stack = to_device(image)
    if stack.dtype != np.float32:
        stack = cle.copy(stack, cle.create(stack.shape, np.float32))
    if enabled:
        import pyopencl as cl

        if cle.get_device().device.type & cl.device_type.GPU:
            stack = equalize_gpu(stack)
        else:
            sums = cle.sum_y_projection(cle.sum_x_projection(stack))
            stack = multiply_by_slice_factors(stack, sums)
    return stack if on_device else pull(stack)


def run_stage(stack, log):
    """Stage equalize: equal slice means (:func:`equalize_slice_means`).

    Also writes the stack's depth profile (slice means before and after,
    :func:`depth_profile`) for the run's intensity-depth plot.
    """
    import pandas as pd

    from . import io
    from .job import transform_stack

    enabled = stack.params["enabled"]
    image, equalized = transform_stack(
        stack, 3, lambda image, _: equalize_slice_means(image, enabled=enabled)
    )
    profile = pd.DataFrame(depth_profile(image, equalized)).assign(sample=stack.name)
    io.write_table(stack.outputs["profile"], profile)
