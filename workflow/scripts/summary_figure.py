"""Rule summary_figure: see concept_saliency.stages.summary_figure."""

from concept_saliency.stages import run_from_snakemake

run_from_snakemake(snakemake, "summary_figure")  # noqa: F821 (snakemake is injected by the script directive)
