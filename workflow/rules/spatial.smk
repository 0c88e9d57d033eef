# Spatial data: concept maps back on the tissue spots.


rule spatial_maps:
    input:
        unpack(decoder_of),
        anndata=f"{R}/{{dataset}}/data/spatial.h5ad",
        grid=f"{R}/{{dataset}}/data/grid.h5",
        latents=f"{R}/{{dataset}}/{{model}}/latents.h5",
        concepts=f"{R}/{{dataset}}/{{model}}/concepts/concepts.h5",
        maps=maps_of,
        code=stage_code("spatial_maps"),
    output:
        spatial_maps=f"{R}/{{dataset}}/{{model}}/maps.h5ad",
    log:
        f"{R}/{{dataset}}/{{model}}/logs/spatial_maps.log",
    wildcard_constraints:
        dataset=_alternatives(SPATIAL_DATASETS),
    conda:
        CONDA_ENV
    threads: 1
    script:
        "../scripts/spatial_maps.py"
