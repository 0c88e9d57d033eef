"""Rule evaluate: see concept_saliency.stages.evaluate."""

from concept_saliency.stages import run_from_snakemake

run_from_snakemake(snakemake, "evaluate")  # noqa: F821 (snakemake is injected by the script directive)
