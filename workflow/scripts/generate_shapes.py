"""Rule generate_shapes: see concept_saliency.stages.demo.generate_shapes."""

from concept_saliency.stages import run_from_snakemake
from concept_saliency.stages.demo import generate_shapes

run_from_snakemake(snakemake, generate_shapes)  # noqa: F821 (snakemake is injected by the script directive)
