"""Rule concepts: see concept_saliency.stages.concepts."""

from concept_saliency.stages import run_from_snakemake

run_from_snakemake(snakemake, "concepts")  # noqa: F821 (snakemake is injected by the script directive)
