"""Rule prepare_spatial: see concept_saliency.stages.prepare_spatial."""

from concept_saliency.stages import run_from_snakemake

run_from_snakemake(snakemake, "prepare_spatial")  # noqa: F821 (snakemake is injected by the script directive)
