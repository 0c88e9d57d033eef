"""Rule concepts: see concept_saliency.stages.concepts.concepts."""

from concept_saliency.stages import run_from_snakemake
from concept_saliency.stages.concepts import concepts

run_from_snakemake(snakemake, concepts)  # noqa: F821 (snakemake is injected by the script directive)
