# Inputs to the one sample store every model stage reads (results/<dataset>/data/samples.h5),
# and the regions given with a user's images (results/<dataset>/data/regions.h5).


rule prepare_images:
    input:
        unpack(source_inputs),
        code=stage_code("prepare_images"),
    output:
        samples=f"{R}/{{dataset}}/data/samples.h5",
    log:
        f"{R}/{{dataset}}/logs/prepare.log",
    benchmark:
        f"{R}/{{dataset}}/benchmarks/prepare_images.tsv"
    wildcard_constraints:
        dataset=_alternatives([d for d in IMAGE_DATASETS if d not in CELEBA_DATASETS]),
    conda:
        CONDA_ENV
    params:
        image_size=lambda wc: dataset(wc)["image_size"],
        validation_fraction=lambda wc: dataset(wc)["validation_fraction"],
        seed=config["seed"],
        # every label column is packed: choosing concepts must not retrain the model
        background=image_background,
    script:
        "../scripts/prepare_images.py"


# Boxes or masks given with a user's images, packed to the images' size (editing one reruns
# this rule and the scoring, not the packing and the training)


rule prepare_regions:
    input:
        unpack(region_inputs),
        code=stage_code("prepare_regions"),
    output:
        regions=f"{R}/{{dataset}}/data/regions.h5",
    log:
        f"{R}/{{dataset}}/logs/prepare_regions.log",
    wildcard_constraints:
        dataset=_alternatives([d for d in IMAGE_DATASETS if image_regions_given(d)]),
    conda:
        CONDA_ENV
    script:
        "../scripts/prepare_regions.py"


rule prepare_spatial:
    input:
        unpack(source_inputs),
        code=stage_code("prepare_spatial"),
    output:
        samples=f"{R}/{{dataset}}/data/samples.h5",
        anndata=f"{R}/{{dataset}}/data/spatial.h5ad",
        grid=f"{R}/{{dataset}}/data/grid.h5",
    log:
        f"{R}/{{dataset}}/logs/prepare.log",
    benchmark:
        f"{R}/{{dataset}}/benchmarks/prepare_spatial.tsv"
    wildcard_constraints:
        dataset=_alternatives(SPATIAL_DATASETS),
    conda:
        CONDA_ENV
    params:
        normalisation=lambda wc: canonical(dataset(wc)["normalisation"]),
        grid_size=grid_size_of,
        grid_from=lambda wc: (ENCODER_GRID.get(wc.dataset) or (None, None))[1],
        max_grid=lambda wc: dataset(wc)["max_grid"],
        validation_fraction=lambda wc: dataset(wc)["validation_fraction"],
        seed=config["seed"],
        options=spatial_options,
        library_id=lambda wc: next(iter(dataset(wc)["source"].values())).get(
            "library_id"
        )
        or wc.dataset,
        presets=presets_of,
    script:
        "../scripts/prepare_spatial.py"
