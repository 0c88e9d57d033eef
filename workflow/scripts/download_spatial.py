"""Rule download_spatial: see concept_saliency.stages.download_spatial.download_spatial."""

from concept_saliency.stages import run_from_snakemake
from concept_saliency.stages.download_spatial import download_spatial

run_from_snakemake(snakemake, download_spatial)  # noqa: F821 (snakemake is injected by the script directive)
