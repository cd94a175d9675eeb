"""Rule resample: isotropic voxels (nuclei3d.resample.resample_isotropic)."""

from nuclei3d import io
from nuclei3d.device import check_current_device_memory
from nuclei3d.job import start_job
from nuclei3d.resample import resample_isotropic, resolve_voxel_size

log = start_job(snakemake)
params = snakemake.params
path = params.image
image, metadata_voxel_size = io.read_stack(path, channel=params.channel)
voxel_size = resolve_voxel_size(
    path,
    sheet=params.voxel_size_um,
    metadata=metadata_voxel_size,
    default=params.default_voxel_size_um,
)
target = params.target_voxel_size_um
log.info(
    "%s: %s %s, voxel %s µm -> %s µm",
    path,
    image.shape,
    image.dtype,
    voxel_size,
    target,
)
check_current_device_memory(path, image.shape, buffers=2)
try:
    resampled = resample_isotropic(image, voxel_size, target_voxel_size_um=target)
except ValueError as error:
    raise ValueError(f"{path}: {error}") from error
log.info("resampled to %s", resampled.shape)
io.write_stack(snakemake.output[0], resampled, (target,) * 3)
