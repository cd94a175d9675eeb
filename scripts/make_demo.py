"""Rule demo_stack: draw one synthetic stack and its ground truth (nuclei3d.demo)."""

import zlib

from nuclei3d import io
from nuclei3d.demo import make_demo_stack
from nuclei3d.job import start_job

log = start_job(snakemake)
params = snakemake.params
seed = zlib.crc32(snakemake.wildcards.stack.encode())
image, labels = make_demo_stack(
    shape=tuple(params.shape),
    voxel_size_um=tuple(params.voxel_size_um),
    n_nuclei=params.n_nuclei,
    seed=seed,
)
log.info("demo stack %s, seed %d, %d nuclei", image.shape, seed, labels.max())
io.write_stack(snakemake.output.image, image, params.voxel_size_um)
io.write_stack(snakemake.output.ground_truth, labels, params.voxel_size_um)
