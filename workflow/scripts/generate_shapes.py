"""Rule generate_shapes: see concept_saliency.stages.generate_shapes."""

from concept_saliency.stages import run_from_snakemake

run_from_snakemake(snakemake, "generate_shapes")  # noqa: F821 (snakemake is injected by the script directive)
