"""Rule measure: per-nucleus statistics (nuclei3d.measure.measure_nuclei)."""

from nuclei3d import io
from nuclei3d.job import start_job
from nuclei3d.measure import measure_nuclei

log = start_job(snakemake, gpu=False)
labels, voxel_size = io.read_stack(snakemake.input.labels)
intensity, _ = io.read_stack(snakemake.input.intensity)
table = measure_nuclei(labels, intensity, voxel_size)
log.info("%d nuclei measured", len(table))
io.write_table(snakemake.output[0], table)
