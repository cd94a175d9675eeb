"""Rule equalize: equal slice means (nuclei3d.equalize.equalize_slice_means)."""

from nuclei3d import io
from nuclei3d.device import check_current_device_memory
from nuclei3d.equalize import equalize_slice_means
from nuclei3d.job import start_job

start_job(snakemake)
image, voxel_size = io.read_stack(snakemake.input[0])
check_current_device_memory(snakemake.input[0], image.shape, buffers=3)
equalized = equalize_slice_means(image, enabled=snakemake.params.enabled)
io.write_stack(snakemake.output[0], equalized, voxel_size)
