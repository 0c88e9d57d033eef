"""Rule evaluate_groundtruth: see concept_saliency.stages.evaluate_groundtruth."""

from concept_saliency.stages import run_from_snakemake

run_from_snakemake(snakemake, "evaluate_groundtruth")  # noqa: F821 (snakemake is injected by the script directive)
