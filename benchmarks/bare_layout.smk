# The least Snakemake needs to plan this workflow's per-stage layout: the six
# per-stack rules with input and output patterns only (no input functions,
# params, logs or resources) and a target rule, over the sheet of the run folder
# (config/samples.tsv; image of stack S at images/S/image.tif). benchmark.py
# --dry-run-scale dry-runs it next to the workflow, on the same sheet.
import csv

with open("config/samples.tsv") as sheet:
    SAMPLES = [row["sample"] for row in csv.DictReader(sheet, delimiter="\t")]


rule all:
    input:
        expand("results/{sample}/overlay.png", sample=SAMPLES),
        expand("results/{sample}/statistics.csv", sample=SAMPLES),


rule resample:
    input:
        "images/{sample}/image.tif",
    output:
        "results/{sample}/resampled.tif",
    run:
        pass


rule equalize:
    input:
        "results/{sample}/resampled.tif",
    output:
        "results/{sample}/equalized.tif",
    run:
        pass


rule background:
    input:
        "results/{sample}/equalized.tif",
    output:
        "results/{sample}/background.tif",
    run:
        pass


rule segment:
    input:
        "results/{sample}/background.tif",
    output:
        "results/{sample}/labels.tif",
    run:
        pass


rule overlay:
    input:
        "results/{sample}/labels.tif",
        "results/{sample}/resampled.tif",
    output:
        "results/{sample}/overlay.png",
    run:
        pass


rule measure:
    input:
        "results/{sample}/labels.tif",
        "results/{sample}/resampled.tif",
    output:
        "results/{sample}/statistics.csv",
    run:
        pass
