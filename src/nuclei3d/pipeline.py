"""All stages in one process, for benchmarks and for cross-device checks.

The workflow runs each stage as its own job; this chains the same library
functions in memory, with the same parameters and defaults as ``config.yaml``.
"""

from __future__ import annotations

from .background import subtract_background
from .device import pull, push_float32
from .equalize import equalize_slice_means
from .measure import measure_nuclei
from .resample import pick_isotropic
from .segment import segment_nuclei

__all__ = ["run_pipeline"]


def run_pipeline(
    image,
    voxel_size_um,
    *,
    target_voxel_size_um=1.0,
    equalize=True,
    radius_um=5.0,
    spot_sigma_um=3.0,
    outline_sigma_um=1.0,
    pull_intermediates=True,
):
    """Resample, equalize, subtract background, segment and measure one stack.

    The stack is resampled on the host (nearest neighbour picks voxels:
    :func:`nuclei3d.resample.pick_isotropic`) and the result pushed once; every
    later stage works on the device image of the one before, and only the labels
    come back to the host.

    Parameters
    ----------
    image : numpy.ndarray
        3D stack (z, y, x).
    voxel_size_um : sequence of 3 float
        Its voxel size (z, y, x) in µm.
    target_voxel_size_um, equalize, radius_um, spot_sigma_um, outline_sigma_um
        The stage parameters, as in ``config.yaml``.
    pull_intermediates : bool, optional
        Return ``equalized`` and ``background`` as host arrays; False leaves
        them as device images (no copy back).

    Returns
    -------
    dict
        ``resampled`` (in the dtype of `image`), ``equalized``, ``background``,
        ``labels`` (arrays) and ``statistics`` (pandas.DataFrame).
    """
    voxel = float(target_voxel_size_um)
    intensity = pick_isotropic(image, voxel_size_um, target_voxel_size_um=voxel)
    resampled = push_float32(intensity)
    equalized = equalize_slice_means(resampled, enabled=equalize, on_device=True)
    background = subtract_background(
        equalized, voxel, radius_um=radius_um, on_device=True
    )
    labels = segment_nuclei(
        background,
        voxel,
        spot_sigma_um=spot_sigma_um,
        outline_sigma_um=outline_sigma_um,
    )
    result = {
        "resampled": intensity,
        "equalized": pull(equalized) if pull_intermediates else equalized,
        "background": pull(background) if pull_intermediates else background,
        "labels": labels,
    }
    result["statistics"] = measure_nuclei(labels, intensity, (voxel,) * 3)
    return result
