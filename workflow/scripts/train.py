"""Rule train: see concept_saliency.stages.train."""

from concept_saliency.stages import run_from_snakemake

run_from_snakemake(snakemake, "train")  # noqa: F821 (snakemake is injected by the script directive)
