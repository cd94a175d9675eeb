"""Stage 2: equalize the mean intensity of every z slice (depth decay)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["equalize_slice_means", "slice_correction_factors"]


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


def equalize_slice_means(image, *, enabled=True):
    """Scale every z slice so its mean intensity equals the mean of the stack.

    Compensates the intensity decay with depth. Whole-stack kernels on the current
    OpenCL device: one projection gives all slice sums, one kernel multiplies every
    slice by its factor (CLIJ's ``multiply_stack_with_scalars``); no slice loop.

    Parameters
    ----------
    image : array_like
        3D stack (z, y, x) of non-negative intensities.
    enabled : bool, optional
        If False, return the stack unchanged (as float32).

    Returns
    -------
    numpy.ndarray
        float32 stack, same shape. Empty slices (mean 0) are left untouched.
    """
    import pyclesperanto_prototype as cle

    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"`image` (shape {image.shape}) must be 3D (z, y, x)")
    if not enabled:
        return image.astype(np.float32, copy=False)
    stack = cle.push(image.astype(np.float32, copy=False))
    sums = cle.pull(cle.sum_y_projection(cle.sum_x_projection(stack)))[0]
    factors = slice_correction_factors(sums / (image.shape[1] * image.shape[2]))
    out = cle.create_like(stack)
    kernels = Path(cle.__file__).parent / "clij-opencl-kernels" / "kernels"
    cle.execute(
        cle.__file__,
        str(kernels / "multiply_stack_with_scalars_x.cl"),
        "multiply_stack_with_scalars",
        out.shape,
        {"src": stack, "src_scalar_list": cle.push(factors[np.newaxis]), "dst": out},
    )
    return np.asarray(cle.pull(out), dtype=np.float32)
