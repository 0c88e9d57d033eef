"""Rule generate_tissue: see concept_saliency.stages.generate_tissue."""

from concept_saliency.stages import run_from_snakemake

run_from_snakemake(snakemake, "generate_tissue")  # noqa: F821 (snakemake is injected by the script directive)
