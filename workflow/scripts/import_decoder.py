"""Rule import_decoder: see concept_saliency.stages.import_decoder."""

from concept_saliency.stages import run_from_snakemake

run_from_snakemake(snakemake, "import_decoder")  # noqa: F821 (snakemake is injected by the script directive)
