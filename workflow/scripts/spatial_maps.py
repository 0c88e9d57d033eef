"""Rule spatial_maps: see concept_saliency.stages.spatial_maps."""

from concept_saliency.stages import run_from_snakemake

run_from_snakemake(snakemake, "spatial_maps")  # noqa: F821 (snakemake is injected by the script directive)
