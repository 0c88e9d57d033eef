"""Rule saliency: see concept_saliency.stages.saliency."""

from concept_saliency.stages import run_from_snakemake

run_from_snakemake(snakemake, "saliency")  # noqa: F821 (snakemake is injected by the script directive)
