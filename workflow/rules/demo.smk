# Draw a synthetic blastocyst-like stack and its ground truth (no download),
# on the host Snakemake runs on.
rule demo_stack:
    output:
        image="resources/demo/{stack}/image.tif",
        ground_truth="resources/demo/{stack}/ground_truth.tif",
    log:
        "resources/demo/{stack}/demo_stack.log",
    benchmark:
        "resources/demo/{stack}/demo_stack.benchmark.tsv"
    localrule: True
    conda:
        ENV
    params:
        shape=config["demo"]["shape"],
        voxel_size_um=config["demo"]["voxel_size_um"],
        n_nuclei=config["demo"]["n_nuclei"],
        code=code_fingerprint("demo", "io"),
    script:
        "../../scripts/make_demo.py"
