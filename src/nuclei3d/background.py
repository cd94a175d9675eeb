"""Stage 3: subtract the background with a top-hat filter."""

from __future__ import annotations

__all__ = ["run_stage", "subtract_background"]


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

    Returns
    -------
    numpy.ndarray
        float32 stack, same shape.

    Raises
    ------
    ValueError
        If `radius_um` or `voxel_size_um` is not positive, or the radius is below
        half a voxel.
    """
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
    out = cle.top_hat_box(
        to_device(image), radius_x=radius, radius_y=radius, radius_z=radius
    )
    return out if on_device else pull(out)


def run_stage(stack, device, log):
    """Stage background: top-hat subtraction (:func:`subtract_background`)."""
    from .job import transform_stack

    radius = stack.params["radius_um"]
    transform_stack(
        stack,
        device,
        3,
        lambda image, um: subtract_background(image, um, radius_um=radius),
    )
