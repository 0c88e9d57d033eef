"""Rule encode: see concept_saliency.stages.encode."""

from concept_saliency.stages import run_from_snakemake

run_from_snakemake(snakemake, "encode")  # noqa: F821 (snakemake is injected by the script directive)
