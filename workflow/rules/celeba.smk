# CelebA: the official files (downloaded, or a copy the user has): crop every image with
# its landmarks as the paper did and pack them into results/<dataset>/data/samples.h5; the
# train, encode, concepts, saliency and render rules then run unchanged. Plus one summary
# figure of attributes x methods.


rule crop_pack:
    input:
        unpack(source_inputs),
        code=stage_code("crop_pack"),
    output:
        samples=f"{R}/{{dataset}}/data/samples.h5",
        report=f"{R}/{{dataset}}/data/crop_pack_report.txt",
    log:
        f"{R}/{{dataset}}/logs/crop_pack.log",
    benchmark:
        f"{R}/{{dataset}}/benchmarks/crop_pack.tsv"
    wildcard_constraints:
        dataset=_alternatives(CELEBA_DATASETS),
    conda:
        CONDA_ENV
    threads: config["threads"]["crop_pack"]
    resources:
        mem_mb=2000,
    params:
        image_size=lambda wc: dataset(wc)["image_size"],
        validation_fraction=lambda wc: dataset(wc)["validation_fraction"],
        seed=config["seed"],
        limit=lambda wc: source_options(wc)["limit"],
        max_bad_fraction=lambda wc: source_options(wc)["max_bad_fraction"],
        max_archive_gb=lambda wc: source_options(wc)["max_archive_gb"],
    script:
        "../scripts/crop_pack.py"


rule summary_figure:
    input:
        samples=f"{R}/{{dataset}}/data/samples.h5",
        concepts=f"{R}/{{dataset}}/{{model}}/concepts/concepts.h5",
        maps=maps_of,
        code=stage_code("summary_figure"),
    output:
        figure=report(
            f"{R}/{{dataset}}/{{model}}/summary/concept_maps.png",
            caption="../report/summary.rst",
            category="{dataset}",
            subcategory="{model}: concept maps",
            labels={
                "dataset": "{dataset}",
                "model": "{model}",
                "concept": "all (summary)",
            },
        ),
    log:
        f"{R}/{{dataset}}/{{model}}/logs/summary_figure.log",
    conda:
        CONDA_ENV
    params:
        rank=lambda wc: dataset(wc)["explain"]["summary_rank"],
        top_k=lambda wc: dataset(wc)["explain"]["top_k"],
    script:
        "../scripts/summary_figure.py"
