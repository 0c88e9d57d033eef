"""Rule prepare_images: see concept_saliency.stages.prepare_images."""

from concept_saliency.stages import run_from_snakemake

run_from_snakemake(snakemake, "prepare_images")  # noqa: F821 (snakemake is injected by the script directive)
