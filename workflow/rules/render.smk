# Figures for people: one per concept (inputs beside their maps).


rule render:
    input:
        unpack(grid_of),
        samples=f"{R}/{{dataset}}/data/samples.h5",
        maps=maps_of,
        code=stage_code("render"),
    output:
        figure=report(
            f"{R}/{{dataset}}/{{model}}/figures/{{concept}}.png",
            caption="../report/concept_maps.rst",
            category="{dataset}",
            subcategory="{model}: concept maps",
            labels={
                "dataset": "{dataset}",
                "model": "{model}",
                "concept": "{concept}",
            },
        ),
    log:
        f"{R}/{{dataset}}/{{model}}/logs/render_{{concept}}.log",
    # On a cluster, profiles/slurm's group-components packs several figures per job
    # (40 attributes -> 4 jobs); `snakemake <one figure>` still renders that one alone.
    group:
        "render"
    conda:
        CONDA_ENV
    script:
        "../scripts/render.py"
