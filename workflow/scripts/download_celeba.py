"""Rule download_celeba: see concept_saliency.stages.download_celeba.download_celeba."""

from concept_saliency.stages import run_from_snakemake
from concept_saliency.stages.download_celeba import download_celeba

run_from_snakemake(snakemake, download_celeba)  # noqa: F821 (snakemake is injected by the script directive)
