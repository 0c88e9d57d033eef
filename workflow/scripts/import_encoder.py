"""Rule import_encoder: see concept_saliency.stages.import_encoder."""

from concept_saliency.stages import run_from_snakemake

run_from_snakemake(snakemake, "import_encoder")  # noqa: F821 (snakemake is injected by the script directive)
