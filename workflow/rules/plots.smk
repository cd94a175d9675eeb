rule plot_run:
    """Figures of the run: nuclei per stack, volumes, intensity against depth."""
    input:
        summary=f"{RESULTS}/summary.csv",
        statistics=f"{RESULTS}/label_statistics.csv",
        profiles=expand(result("depth_profile.csv"), sample=samples.index),
    output:
        nuclei=report(
            f"{RESULTS}/plots/nuclei_per_stack.png",
            caption="../report/nuclei_per_stack.rst",
            category="Statistics",
        ),
        volumes=report(
            f"{RESULTS}/plots/volume_distribution.png",
            caption="../report/volume_distribution.rst",
            category="Statistics",
        ),
        depth=report(
            f"{RESULTS}/plots/intensity_vs_depth.png",
            caption="../report/intensity_vs_depth.rst",
            category="Statistics",
        ),
    log:
        f"{RESULTS}/logs/plot_run.log",
    params:
        code=code_fingerprint("plots"),
    run:
        run_task(
            nuclei3d.plots.plot_job,
            rule,
            log,
            summary=input.summary,
            statistics=input.statistics,
            profiles=list(input.profiles),
            outputs=dict(output.items()),
        )
