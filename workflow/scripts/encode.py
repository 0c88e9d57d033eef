"""Rule encode: see concept_saliency.stages.encode.encode."""

from concept_saliency.stages import run_from_snakemake
from concept_saliency.stages.encode import encode

run_from_snakemake(snakemake, encode)  # noqa: F821 (snakemake is injected by the script directive)
