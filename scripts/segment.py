"""Rule segment: Voronoi-Otsu labeling (nuclei3d.segment.segment_nuclei)."""

from nuclei3d import io
from nuclei3d.device import check_current_device_memory
from nuclei3d.job import start_job
from nuclei3d.segment import segment_nuclei

log = start_job(snakemake)
params = snakemake.params
image, voxel_size = io.read_stack(snakemake.input[0])
check_current_device_memory(snakemake.input[0], image.shape, buffers=8)
labels = segment_nuclei(
    image,
    voxel_size[0],
    spot_sigma_um=params.spot_sigma_um,
    outline_sigma_um=params.outline_sigma_um,
)
log.info("%d nuclei", labels.max())
io.write_stack(snakemake.output[0], labels, voxel_size)
