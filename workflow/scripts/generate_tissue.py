"""Rule generate_tissue: see concept_saliency.stages.demo.generate_tissue."""

from concept_saliency.stages import run_from_snakemake
from concept_saliency.stages.demo import generate_tissue

run_from_snakemake(snakemake, generate_tissue)  # noqa: F821 (snakemake is injected by the script directive)
