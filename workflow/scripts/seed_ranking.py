"""Rule seed_ranking: see concept_saliency.stages.seed_ranking."""

from concept_saliency.stages import run_from_snakemake

run_from_snakemake(snakemake, "seed_ranking")  # noqa: F821 (snakemake is injected by the script directive)
