"""Rule plot_loss: see concept_saliency.stages.plot_loss.plot_loss."""

from concept_saliency.stages import run_from_snakemake
from concept_saliency.stages.plot_loss import plot_loss

run_from_snakemake(snakemake, plot_loss)  # noqa: F821 (snakemake is injected by the script directive)
