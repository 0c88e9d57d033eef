"""Rule saliency: see concept_saliency.stages.saliency.saliency."""

from concept_saliency.stages import run_from_snakemake
from concept_saliency.stages.saliency import saliency

run_from_snakemake(snakemake, saliency)  # noqa: F821 (snakemake is injected by the script directive)
