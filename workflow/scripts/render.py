"""Rule render: see concept_saliency.stages.render."""

from concept_saliency.stages import run_from_snakemake

run_from_snakemake(snakemake, "render")  # noqa: F821 (snakemake is injected by the script directive)
