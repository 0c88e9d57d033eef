"""Rule download: see concept_saliency.stages.download."""

from concept_saliency.stages import run_from_snakemake

run_from_snakemake(snakemake, "download")  # noqa: F821 (snakemake is injected by the script directive)
