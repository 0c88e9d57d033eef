"""Rule plot_scores: see concept_saliency.stages.plot_scores."""

from concept_saliency.stages import run_from_snakemake

run_from_snakemake(snakemake, "plot_scores")  # noqa: F821 (snakemake is injected by the script directive)
