# Every method's maps scored side by side: deletion and insertion curves, the cascading
# model-randomisation check, and the ground truth where it is known (the demo data).


rule evaluate:
    input:
        unpack(evaluate_inputs),
        samples=f"{R}/{{dataset}}/data/samples.h5",
        encoder=encoder_of,
        concepts=f"{R}/{{dataset}}/{{model}}/concepts/concepts.h5",
        maps=maps_of,
        code=stage_code("evaluate"),
    output:
        summary=report(
            f"{R}/{{dataset}}/{{model}}/evaluation/summary.tsv",
            caption="../report/evaluation.rst",
            category="{dataset}",
            subcategory="{model}: evaluation of the methods",
            labels={
                "dataset": "{dataset}",
                "model": "{model}",
                "figure": "method x metric table",
            },
        ),
        randomisation=f"{R}/{{dataset}}/{{model}}/evaluation/randomisation.tsv",
        curves=f"{R}/{{dataset}}/{{model}}/evaluation/curves.tsv",
        figure=report(
            f"{R}/{{dataset}}/{{model}}/evaluation/evaluation.png",
            caption="../report/evaluation.rst",
            category="{dataset}",
            subcategory="{model}: evaluation of the methods",
            labels={"dataset": "{dataset}", "model": "{model}", "figure": "curves"},
        ),
    log:
        f"{R}/{{dataset}}/{{model}}/logs/evaluate.log",
    benchmark:
        f"{R}/{{dataset}}/{{model}}/benchmarks/evaluate.tsv"
    conda:
        CONDA_ENV
    threads: config["threads"]["saliency"]
    resources:
        mem_mb=4000,
    params:
        methods=lambda wc: canonical(
            {m: o or {} for m, o in saliency_cfg(wc.dataset)["methods"].items()}
        ),
        chunk_size=lambda wc: saliency_cfg(wc.dataset).get("chunk_size", 64),
        curve_steps=config["evaluation"]["curve_steps"],
        fill_value=config["evaluation"]["fill_value"],
        randomisation_samples=config["evaluation"]["randomisation_samples"],
        randomisation_threshold=config["evaluation"]["randomisation_threshold"],
        seed=config["seed"],
    script:
        "../scripts/evaluate.py"


# Where the maps point: every method's maps scored against the regions the data know.


rule localise:
    input:
        unpack(localisation_inputs),
        concepts=f"{R}/{{dataset}}/{{model}}/concepts/concepts.h5",
        maps=maps_of,
        code=stage_code("localise"),
    output:
        table=report(
            f"{R}/{{dataset}}/{{model}}/evaluation/localisation.tsv",
            caption="../report/localisation.rst",
            category="{dataset}",
            subcategory="{model}: where the maps point",
            labels={"dataset": "{dataset}", "model": "{model}", "figure": "table"},
        ),
        per_sample=f"{R}/{{dataset}}/{{model}}/evaluation/localisation_per_sample.tsv",
        figure=report(
            f"{R}/{{dataset}}/{{model}}/evaluation/localisation.png",
            caption="../report/localisation.rst",
            category="{dataset}",
            subcategory="{model}: where the maps point",
            labels={"dataset": "{dataset}", "model": "{model}", "figure": "scores"},
        ),
    log:
        f"{R}/{{dataset}}/{{model}}/logs/localise.log",
    conda:
        CONDA_ENV
    params:
        regions=lambda wc: OWN_REGIONS[wc.dataset],
        seed=config["seed"],
    script:
        "../scripts/localise.py"


# Several seeds of one model: are their maps of the same samples, and their scores, alike?


rule stability:
    input:
        unpack(grid_if_spatial),
        samples=f"{R}/{{dataset}}/data/samples.h5",
        encoders=lambda wc: seed_runs(wc, "model/encoder.keras"),
        concepts=lambda wc: seed_runs(wc, "concepts/concepts.h5"),
        code=stage_code("stability"),
    output:
        table=report(
            f"{R}/{{dataset}}/{{model}}/stability/stability.tsv",
            caption="../report/stability.rst",
            category="{dataset}",
            subcategory="{model}: stability across seeds",
            labels={"dataset": "{dataset}", "model": "{model}", "figure": "table"},
        ),
        figure=report(
            f"{R}/{{dataset}}/{{model}}/stability/stability.png",
            caption="../report/stability.rst",
            category="{dataset}",
            subcategory="{model}: stability across seeds",
            labels={"dataset": "{dataset}", "model": "{model}", "figure": "maps"},
        ),
    log:
        f"{R}/{{dataset}}/{{model}}/logs/stability.log",
    benchmark:
        f"{R}/{{dataset}}/{{model}}/benchmarks/stability.tsv"
    conda:
        CONDA_ENV
    threads: config["threads"]["saliency"]
    params:
        methods=lambda wc: canonical(
            {m: o or {} for m, o in saliency_cfg(wc.dataset)["methods"].items()}
        ),
        samples_per_concept=config["evaluation"]["stability_samples"],
        threshold=config["evaluation"]["stability_threshold"],
        chunk_size=lambda wc: saliency_cfg(wc.dataset).get("chunk_size", 64),
    script:
        "../scripts/stability.py"


# The methods of a model with seeds ranked once: the seeds' evaluations and the maps' stability.


rule seed_ranking:
    input:
        summaries=lambda wc: seed_runs(wc, "evaluation/summary.tsv"),
        stability=f"{R}/{{dataset}}/{{model}}/stability/stability.tsv",
        code=stage_code("seed_ranking"),
    output:
        table=report(
            f"{R}/{{dataset}}/{{model}}/stability/ranking.tsv",
            caption="../report/seed_ranking.rst",
            category="{dataset}",
            subcategory="{model}: stability across seeds",
            labels={
                "dataset": "{dataset}",
                "model": "{model}",
                "figure": "methods ranked over the seeds",
            },
        ),
    log:
        f"{R}/{{dataset}}/{{model}}/logs/seed_ranking.log",
    conda:
        CONDA_ENV
    params:
        randomisation_threshold=config["evaluation"]["randomisation_threshold"],
    script:
        "../scripts/seed_ranking.py"


# A tissue's concept maps averaged over the seeds of one model, drawn and scored.


rule consensus:
    input:
        anndata=f"{R}/{{dataset}}/data/spatial.h5ad",
        grid=f"{R}/{{dataset}}/data/grid.h5",
        concepts=lambda wc: seed_runs(wc, "concepts/concepts.h5"),
        maps=lambda wc: [
            path
            for method in methods_of(wc.dataset)
            for path in seed_runs(wc, f"saliency/{method}.h5")
        ],
        code=stage_code("consensus"),
    output:
        consensus_maps=f"{R}/{{dataset}}/{{model}}/stability/consensus_maps.h5ad",
        table=report(
            f"{R}/{{dataset}}/{{model}}/stability/consensus.tsv",
            caption="../report/consensus.rst",
            category="{dataset}",
            subcategory="{model}: stability across seeds",
            labels={
                "dataset": "{dataset}",
                "model": "{model}",
                "figure": "consensus table",
            },
        ),
        figure=report(
            f"{R}/{{dataset}}/{{model}}/stability/consensus.png",
            caption="../report/consensus.rst",
            category="{dataset}",
            subcategory="{model}: stability across seeds",
            labels={
                "dataset": "{dataset}",
                "model": "{model}",
                "figure": "consensus maps",
            },
        ),
    log:
        f"{R}/{{dataset}}/{{model}}/logs/consensus.log",
    wildcard_constraints:
        dataset=_alternatives(SPATIAL_DATASETS),
    conda:
        CONDA_ENV
    params:
        regions=lambda wc: OWN_REGIONS.get(wc.dataset, {}),
    script:
        "../scripts/consensus.py"
