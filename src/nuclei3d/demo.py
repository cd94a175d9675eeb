"""Synthetic blastocyst-like stacks with ground truth, for the demo and the tests.

Stacks look like the seed's BBBC032 crop: anisotropic voxels (1.0 × 0.202 × 0.202
µm), touching roundish nuclei, intensity decaying and background rising with depth,
blur and noise. Everything is drawn from one seed, so a stack is reproducible
byte for byte.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["DEMO_SHAPE", "DEMO_VOXEL_SIZE_UM", "make_demo_stack"]

DEMO_SHAPE = (86, 396, 393)
DEMO_VOXEL_SIZE_UM = (1.0, 0.202, 0.202)


def _place_nuclei(rng, extent_um, n_nuclei, radius_um):
    """Random sequential placement of touching (barely overlapping) nuclei."""
    centres, radii = [], []
    for _ in range(200 * n_nuclei):
        if len(centres) == n_nuclei:
            break
        radius = rng.uniform(*radius_um) * rng.uniform(0.85, 1.15, size=3)
        low = np.minimum(radius, np.asarray(extent_um) / 2)
        centre = rng.uniform(low, np.asarray(extent_um) - low)
        mean_r = radius.mean()
        if all(
            np.linalg.norm(centre - c) >= 0.85 * (mean_r + r.mean())
            for c, r in zip(centres, radii, strict=True)
        ):
            centres.append(centre)
            radii.append(radius)
    return centres, radii


def make_demo_stack(
    *,
    shape=DEMO_SHAPE,
    voxel_size_um=DEMO_VOXEL_SIZE_UM,
    n_nuclei=60,
    radius_um=(4.0, 5.5),
    seed=0,
):
    """Draw one synthetic stack and its ground-truth labels.

    Parameters
    ----------
    shape : tuple of 3 int, optional
        Stack shape (z, y, x); the seed's crop by default.
    voxel_size_um : tuple of 3 float, optional
        Voxel size (z, y, x) in µm.
    n_nuclei : int, optional
        Nuclei to place (fewer if they do not fit).
    radius_um : tuple of 2 float, optional
        Range of nucleus radii in µm (each axis varies by ±15 %).
    seed : int, optional
        Random seed; the same seed gives the same stack.

    Returns
    -------
    image : numpy.ndarray
        uint8 stack.
    labels : numpy.ndarray
        uint16 ground truth on the same grid, 0 = background, 1..n = nuclei.

    Examples
    --------
    >>> image, labels = make_demo_stack(shape=(20, 150, 150), n_nuclei=2, seed=1)
    >>> image.dtype, labels.max()
    (dtype('uint8'), 2)
    """
    rng = np.random.default_rng(seed)
    spacing = np.asarray(voxel_size_um, dtype=float)
    extent = np.asarray(shape) * spacing
    centres, radii = _place_nuclei(rng, extent, n_nuclei, radius_um)

    best = np.full(shape, np.inf, dtype=np.float32)
    labels = np.zeros(shape, dtype=np.uint16)
    for label, (centre, radius) in enumerate(zip(centres, radii, strict=True), 1):
        low = np.maximum(((centre - radius) / spacing).astype(int), 0)
        high = np.minimum(((centre + radius) / spacing).astype(int) + 2, shape)
        box = tuple(slice(a, b) for a, b in zip(low, high, strict=True))
        distance = sum(
            ((g * s - c) / r) ** 2
            for g, s, c, r in zip(np.ogrid[box], spacing, centre, radius, strict=True)
        ).astype(np.float32)
        closer = (distance <= 1) & (distance < best[box])
        best[box][closer] = distance[closer]
        labels[box][closer] = label

    brightness = np.concatenate([[0.0], rng.uniform(0.7, 1.0, len(centres))])
    signal = brightness[labels] * (1 - 0.3 * np.clip(best, 0, 1))
    signal *= 1 + 0.15 * rng.standard_normal(shape)
    signal = ndimage.gaussian_filter(signal, sigma=(0.8, 1.5, 1.5))
    depth = np.arange(shape[0])[:, None, None] * spacing[0] / max(extent[0], 1e-9)
    image = 220 * signal * np.exp(-1.5 * depth) + 3 + 3 * depth
    image = image + rng.normal(0, 3, shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), labels
