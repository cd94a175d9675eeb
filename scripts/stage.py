"""The job of every stage rule: the stage over the rule's batch of stacks.

Which stage: ``params.stage`` (a module of the nuclei3d library); what it does
per job: nuclei3d.job.run_stage_job.
"""

from nuclei3d.job import run_stage_job

run_stage_job(snakemake)
