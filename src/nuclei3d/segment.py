"""Stage 4: label nuclei with Voronoi-Otsu labeling."""

from __future__ import annotations

import numpy as np

from .io import as_label_dtype

__all__ = ["segment_nuclei"]


def segment_nuclei(image, voxel_size_um, *, spot_sigma_um=3.0, outline_sigma_um=1.0):
    """Label nuclei in an isotropic stack (``cle.voronoi_otsu_labeling``).

    Parameters
    ----------
    image : array_like
        3D isotropic, background-subtracted stack (z, y, x).
    voxel_size_um : float
        Edge of its (cubic) voxels in µm.
    spot_sigma_um : float, optional
        Gaussian sigma (µm) for finding nucleus centres; larger merges close
        nuclei, smaller splits big ones.
    outline_sigma_um : float, optional
        Gaussian sigma (µm) for the Otsu foreground mask; larger gives smoother,
        rounder outlines.

    Returns
    -------
    numpy.ndarray
        Labels, 0 = background, 1..n = nuclei; uint16 (uint32 beyond 65535).
    """
    import pyclesperanto_prototype as cle

    if not (voxel_size_um > 0 and spot_sigma_um > 0 and outline_sigma_um > 0):
        raise ValueError(
            f"`spot_sigma_um` ({spot_sigma_um}), `outline_sigma_um` "
            f"({outline_sigma_um}) and `voxel_size_um` ({voxel_size_um}) must be "
            "positive"
        )
    labels = cle.voronoi_otsu_labeling(
        np.asarray(image),
        spot_sigma=spot_sigma_um / voxel_size_um,
        outline_sigma=outline_sigma_um / voxel_size_um,
    )
    return as_label_dtype(cle.pull(labels))
