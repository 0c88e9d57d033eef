# Figures for people: one per concept (inputs beside their maps), and the
# ground-truth evaluation of the demo data.


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


rule evaluate_groundtruth:
    input:
        unpack(groundtruth_inputs),
        concepts=f"{R}/{{dataset}}/{{model}}/concepts/concepts.h5",
        maps=maps_of,
        code=stage_code("evaluate_groundtruth"),
    output:
        table=report(
            f"{R}/{{dataset}}/{{model}}/evaluation/groundtruth.tsv",
            caption="../report/groundtruth.rst",
            category="{dataset}",
            subcategory="{model}: ground truth",
            labels={"dataset": "{dataset}", "model": "{model}", "figure": "table"},
        ),
        per_sample=f"{R}/{{dataset}}/{{model}}/evaluation/groundtruth_per_sample.tsv",
        figure=report(
            f"{R}/{{dataset}}/{{model}}/evaluation/groundtruth.png",
            caption="../report/groundtruth.rst",
            category="{dataset}",
            subcategory="{model}: ground truth",
            labels={"dataset": "{dataset}", "model": "{model}", "figure": "bars"},
        ),
    log:
        f"{R}/{{dataset}}/{{model}}/logs/evaluate_groundtruth.log",
    conda:
        CONDA_ENV
    params:
        seed=config["seed"],
    script:
        "../scripts/evaluate_groundtruth.py"
