"""Rule plot_loss: see concept_saliency.stages.plot_loss."""

from concept_saliency.stages import run_from_snakemake

run_from_snakemake(snakemake, "plot_loss")  # noqa: F821 (snakemake is injected by the script directive)
