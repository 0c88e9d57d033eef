# Concept vectors, scores, how well each concept separates, samples to explain.


rule concepts:
    input:
        unpack(spatial_anndata_of),
        latents=f"{R}/{{dataset}}/{{model}}/latents.h5",
        samples=f"{R}/{{dataset}}/data/samples.h5",
        code=stage_code("concepts"),
    output:
        concepts=f"{R}/{{dataset}}/{{model}}/concepts/concepts.h5",
        separation=report(
            f"{R}/{{dataset}}/{{model}}/concepts/separation.tsv",
            caption="../report/separation.rst",
            category="{dataset}",
            subcategory="{model}: concepts",
            labels={
                "dataset": "{dataset}",
                "model": "{model}",
                "figure": "AUROC table",
            },
        ),
        groups=f"{R}/{{dataset}}/{{model}}/concepts/groups.tsv",
    log:
        f"{R}/{{dataset}}/{{model}}/logs/concepts.log",
    conda:
        CONDA_ENV
    params:
        spec=lambda wc: canonical(dataset(wc)["concepts"]),
        top_k=lambda wc: dataset(wc)["explain"]["top_k"],
        explain_ids=lambda wc: dataset(wc)["explain"]["ids"],
        seed=config["seed"],
    script:
        "../scripts/concepts.py"


rule plot_scores:
    input:
        concepts=f"{R}/{{dataset}}/{{model}}/concepts/concepts.h5",
        latents=f"{R}/{{dataset}}/{{model}}/latents.h5",
        separation=f"{R}/{{dataset}}/{{model}}/concepts/separation.tsv",
        code=stage_code("plot_scores"),
    output:
        figure=report(
            f"{R}/{{dataset}}/{{model}}/concepts/histograms.png",
            caption="../report/histograms.rst",
            category="{dataset}",
            subcategory="{model}: concepts",
            labels={
                "dataset": "{dataset}",
                "model": "{model}",
                "figure": "score histograms",
            },
        ),
    log:
        f"{R}/{{dataset}}/{{model}}/logs/plot_scores.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/plot_scores.py"
