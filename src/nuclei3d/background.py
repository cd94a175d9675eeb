"""Stage 3: subtract the background with a top-hat filter."""

from __future__ import annotations

# The stage runs OpenCL kernels: its job opens a device first (nuclei3d.job).
OPENCL = True

__all__ = ["run_stage", "subtract_background", "top_hat_box"]

KERNEL = "top_hat_box.cl"  # in src/nuclei3d/kernels/


def top_hat_box(image, radius):
    """``cle.top_hat_box`` with one `radius` on all axes, to the bit.

    The seven launches cle makes through three plugin calls (six one-axis
    passes and a subtraction), here of ``kernels/top_hat_box.cl`` straight
    through pyopencl, without cle's Python set-up of each launch.

    Parameters
    ----------
    image : pyclesperanto_prototype.OCLArray
        float32 3D image.
    radius : int
        Half the box edge, in voxels.

    Returns
    -------
    pyclesperanto_prototype.OCLArray
        float32 image minus its box opening.
    """
    import numpy as np
    import pyclesperanto_prototype as cle

    from .device import project_kernel

    if image.dtype != np.float32 or image.ndim != 3:
        raise TypeError("top_hat_box works on float32 3D images")
    queue, context = image.queue, image.context
    extreme = project_kernel(context, KERNEL, "box_extreme")
    size = tuple(int(n) for n in image.shape[::-1])
    first, second = cle.create_like(image), cle.create_like(image)
    source = image
    for maximum in (0, 1):  # the opening: minimum, then maximum
        for axis in (0, 1, 2):  # x, y, z
            target = second if source is first else first
            extreme(
                queue,
                size,
                None,
                source.data,
                target.data,
                np.int32(axis),
                np.int32(radius),
                np.int32(maximum),
            )
            source = target
    out = cle.create_like(image)
    project_kernel(context, KERNEL, "subtract")(
        queue, (image.size,), None, image.data, source.data, out.data
    )
    return out


def subtract_background(image, voxel_size_um, *, radius_um=5.0, on_device=False):
    """Remove slowly varying background with a box top-hat of `radius_um`.

    Parameters
    ----------
    image : array_like or pyclesperanto_prototype.OCLArray
        3D isotropic stack (z, y, x), on the host or the device.
    voxel_size_um : float
        Edge of its (cubic) voxels in µm.
    radius_um : float, optional
        Top-hat radius in µm; larger than a nucleus' radius. The seed used 5
        voxels of 1 µm.
    on_device : bool, optional
        Return the device image instead of pulling it.

    Returns
    -------
    numpy.ndarray or pyclesperanto_prototype.OCLArray
        float32 stack, same shape.

    Raises
    ------
    ValueError
        If `radius_um` or `voxel_size_um` is not positive, or the radius is below
        half a voxel.
    """
    import numpy as np
    import pyclesperanto_prototype as cle

    from .device import on_device as to_device
    from .device import pull

    if not (voxel_size_um > 0 and radius_um > 0):
        raise ValueError(
            f"`radius_um` ({radius_um}) and `voxel_size_um` ({voxel_size_um}) "
            "must be positive"
        )
    radius = round(radius_um / voxel_size_um)
    if radius < 1:
        raise ValueError(
            f"`radius_um` ({radius_um} µm) is below half a voxel "
            f"({voxel_size_um} µm): the top-hat would do nothing"
        )
    image = to_device(image)
    if image.dtype == np.float32:
        out = top_hat_box(image, radius)
    else:
        out = cle.top_hat_box(image, radius_x=radius, radius_y=radius, radius_z=radius)
    return out if on_device else pull(out)


def run_stage(stack, log):
    """Stage background: top-hat subtraction (:func:`subtract_background`)."""
    from .job import transform_stack

    radius = stack.params["radius_um"]
    transform_stack(
        stack,
        3,
        lambda image, um: subtract_background(image, um, radius_um=radius),
    )
