"""Rule stability: see concept_saliency.stages.stability."""

from concept_saliency.stages import run_from_snakemake

run_from_snakemake(snakemake, "stability")  # noqa: F821 (snakemake is injected by the script directive)
