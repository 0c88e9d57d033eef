"""Rule evaluate_groundtruth: see concept_saliency.stages.groundtruth.evaluate_groundtruth."""

from concept_saliency.stages import run_from_snakemake
from concept_saliency.stages.groundtruth import evaluate_groundtruth

run_from_snakemake(snakemake, evaluate_groundtruth)  # noqa: F821 (snakemake is injected by the script directive)
