"""Rule consensus: see concept_saliency.stages.consensus."""

from concept_saliency.stages import run_from_snakemake

run_from_snakemake(snakemake, "consensus")  # noqa: F821 (snakemake is injected by the script directive)
