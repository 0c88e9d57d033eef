"""Rule import_encoder: see concept_saliency.stages.import_encoder.import_encoder."""

from concept_saliency.stages import run_from_snakemake
from concept_saliency.stages.import_encoder import import_encoder

run_from_snakemake(snakemake, import_encoder)  # noqa: F821 (snakemake is injected by the script directive)
