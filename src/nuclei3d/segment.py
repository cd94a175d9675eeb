"""Stage 4: label nuclei with Voronoi-Otsu labeling."""

from __future__ import annotations

from .io import as_label_dtype

__all__ = ["run_stage", "segment_nuclei"]


def segment_nuclei(
    image, voxel_size_um, *, spot_sigma_um=3.0, outline_sigma_um=1.0, on_device=False
):
    """Label nuclei in an isotropic stack (``cle.voronoi_otsu_labeling``).

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
    import pyclesperanto_prototype as cle

    from .device import on_device as to_device
    from .device import pull

    if not (voxel_size_um > 0 and spot_sigma_um > 0 and outline_sigma_um > 0):
        raise ValueError(
            f"`spot_sigma_um` ({spot_sigma_um}), `outline_sigma_um` "
            f"({outline_sigma_um}) and `voxel_size_um` ({voxel_size_um}) must be "
            "positive"
        )
    labels = cle.voronoi_otsu_labeling(
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
