# The run's figures, one rule each, so that each waits only for its own tables:
# the depth profiles (written by equalize) are drawn while later stages still run.
FIGURES = {
    "nuclei": ("nuclei_per_stack", [f"{RESULTS}/summary.csv"]),
    "volumes": ("volume_distribution", [f"{RESULTS}/label_statistics.csv"]),
    "depth": ("intensity_vs_depth", every_stack("depth_profile.csv")),
}

for figure, (stem, figure_tables) in FIGURES.items():

    # One figure of the run (nuclei per stack, volumes, intensity against depth).
    rule:
        name:
            f"plot_{figure}"
        input:
            figure_tables,
        output:
            report(
                f"{RESULTS}/plots/{stem}.png",
                caption=f"../report/{stem}.rst",
                category="Statistics",
            ),
        log:
            f"{RESULTS}/logs/plot_{figure}.log",
        localrule: True
        conda:
            ENV
        params:
            figure=figure,
            code=code_fingerprint("plots"),
        script:
            "../../scripts/plot.py"
