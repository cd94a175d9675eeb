"""Rule overlay: outline and projection PNGs (nuclei3d.overlay.overlay_images)."""

import imageio.v3 as iio

from nuclei3d import io
from nuclei3d.device import check_current_device_memory
from nuclei3d.job import start_job
from nuclei3d.overlay import overlay_images

start_job(snakemake)
intensity, _ = io.read_stack(snakemake.input.intensity)
labels, _ = io.read_stack(snakemake.input.labels)
check_current_device_memory(snakemake.input.labels, labels.shape, buffers=3)
pictures = overlay_images(
    intensity, labels, every_n_slices=snakemake.params.every_n_slices
)
with io.atomic_directory(snakemake.output[0]) as folder:
    for name, picture in pictures.items():
        iio.imwrite(folder / f"{name}.png", picture)
