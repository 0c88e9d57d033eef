"""Rule spatial_maps: see concept_saliency.stages.spatial_maps.spatial_maps."""

from concept_saliency.stages import run_from_snakemake
from concept_saliency.stages.spatial_maps import spatial_maps

run_from_snakemake(snakemake, spatial_maps)  # noqa: F821 (snakemake is injected by the script directive)
