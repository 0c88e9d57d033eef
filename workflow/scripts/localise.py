"""Rule localise: see concept_saliency.stages.localise."""

from concept_saliency.stages import run_from_snakemake

run_from_snakemake(snakemake, "localise")  # noqa: F821 (snakemake is injected by the script directive)
