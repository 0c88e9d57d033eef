"""Rule prepare_regions: see concept_saliency.stages.prepare_regions."""

from concept_saliency.stages import run_from_snakemake

run_from_snakemake(snakemake, "prepare_regions")  # noqa: F821 (snakemake is injected by the script directive)
