"""Rule crop_pack: see concept_saliency.stages.crop_pack."""

from concept_saliency.stages import run_from_snakemake

run_from_snakemake(snakemake, "crop_pack")  # noqa: F821 (snakemake is injected by the script directive)
