"""Rule background: top-hat background subtraction (nuclei3d.background)."""

from nuclei3d import io
from nuclei3d.background import subtract_background
from nuclei3d.device import check_current_device_memory
from nuclei3d.job import start_job

start_job(snakemake)
image, voxel_size = io.read_stack(snakemake.input[0])
check_current_device_memory(snakemake.input[0], image.shape, buffers=3)
result = subtract_background(image, voxel_size[0], radius_um=snakemake.params.radius_um)
io.write_stack(snakemake.output[0], result, voxel_size)
