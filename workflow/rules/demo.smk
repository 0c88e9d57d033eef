# Built-in demo data: synthetic sets with known ground truth, in the raw formats
# real data comes in (an image folder + attribute table; an ST count matrix).


rule generate_shapes:
    input:
        code=stage_code("generate_shapes"),
    output:
        images=directory(f"{R}/{{dataset}}/raw/images"),
        attributes=f"{R}/{{dataset}}/raw/attributes.tsv",
        masks=f"{R}/{{dataset}}/raw/masks.h5",
    log:
        f"{R}/{{dataset}}/logs/generate_shapes.log",
    conda:
        CONDA_ENV
    params:
        n_samples=lambda wc: dataset(wc)["source"]["synthetic_shapes"]["n_samples"],
        image_size=lambda wc: dataset(wc)["source"]["synthetic_shapes"]["image_size"],
        noise=lambda wc: dataset(wc)["source"]["synthetic_shapes"]["noise"],
        prevalence=lambda wc: dataset(wc)["source"]["synthetic_shapes"]["prevalence"],
        seed=config["seed"],
    script:
        "../scripts/generate_shapes.py"


rule generate_tissue:
    input:
        code=stage_code("generate_tissue"),
    output:
        counts=f"{R}/{{dataset}}/raw/counts.tsv.gz",
        annotation=f"{R}/{{dataset}}/raw/annotation.tsv",
    log:
        f"{R}/{{dataset}}/logs/generate_tissue.log",
    conda:
        CONDA_ENV
    params:
        n_layers=lambda wc: dataset(wc)["source"]["synthetic_tissue"]["n_layers"],
        genes_per_layer=lambda wc: dataset(wc)["source"]["synthetic_tissue"][
            "genes_per_layer"
        ],
        n_housekeeping=lambda wc: dataset(wc)["source"]["synthetic_tissue"][
            "n_housekeeping"
        ],
        n_noise=lambda wc: dataset(wc)["source"]["synthetic_tissue"]["n_noise"],
        grid=lambda wc: dataset(wc)["source"]["synthetic_tissue"]["grid"],
        depth=lambda wc: dataset(wc)["source"]["synthetic_tissue"]["depth"],
        fold_change=lambda wc: dataset(wc)["source"]["synthetic_tissue"]["fold_change"],
        seed=config["seed"],
    script:
        "../scripts/generate_tissue.py"
