"""Rule depth_profile: slice means before/after equalization (nuclei3d.plots)."""

import pandas as pd

from nuclei3d import io
from nuclei3d.job import start_job
from nuclei3d.plots import depth_profile

start_job(snakemake, gpu=False)
resampled, _ = io.read_stack(snakemake.input.resampled)
equalized, _ = io.read_stack(snakemake.input.equalized)
profile = pd.DataFrame(depth_profile(resampled, equalized))
io.write_table(snakemake.output[0], profile.assign(sample=snakemake.wildcards.sample))
