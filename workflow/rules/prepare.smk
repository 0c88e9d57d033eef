# Inputs to the one sample store every model stage reads (results/<dataset>/data/samples.h5).


def image_inputs(wc):
    ds = dataset(wc)
    if source_kind(wc.dataset, ds) == "synthetic_shapes":
        base = f"{R}/{wc.dataset}/raw"
        return {"images": f"{base}/images", "labels": f"{base}/attributes.tsv"}
    src = ds["source"]["image_folder"]
    return {"images": src["images"], "labels": src["labels"]}


def spatial_inputs(wc):
    ds = dataset(wc)
    if source_kind(wc.dataset, ds) == "synthetic_tissue":
        base = f"{R}/{wc.dataset}/raw"
        return {"counts": f"{base}/counts.tsv.gz", "annotation": f"{base}/annotation.tsv"}
    return spatial_files(wc)


def spatial_options(wc):
    """Options of an anndata source: counts_layer, region_key, library_id."""
    spec = dataset(wc)["source"].get("anndata")
    if spec is None:
        return {}
    return canonical({k: spec.get(k) for k in ("counts_layer", "region_key", "library_id")})


rule prepare_images:
    input:
        unpack(image_inputs),
        code=library("stages/prepare.py", "data/images.py", "data/samples.py"),
    output:
        samples=f"{R}/{{dataset}}/data/samples.h5",
    wildcard_constraints:
        dataset=_alternatives([d for d in IMAGE_DATASETS if d not in CELEBA_DATASETS]),
    params:
        image_size=lambda wc: dataset(wc)["image_size"],
        validation_fraction=lambda wc: dataset(wc)["validation_fraction"],
        seed=config["seed"],
        attributes=lambda wc: dataset(wc)["concepts"].get("attributes"),
    log:
        f"{R}/{{dataset}}/logs/prepare.log",
    conda:
        "../../envs/concept-saliency.yaml"
    script:
        "../scripts/prepare_images.py"


rule prepare_spatial:
    input:
        unpack(spatial_inputs),
        code=library("stages/prepare.py", "data/spatial.py", "data/samples.py", "model.py"),
    output:
        samples=f"{R}/{{dataset}}/data/samples.h5",
        anndata=f"{R}/{{dataset}}/data/spatial.h5ad",
        grid=f"{R}/{{dataset}}/data/grid.h5",
    wildcard_constraints:
        dataset=_alternatives(SPATIAL_DATASETS),
    params:
        normalisation=lambda wc: canonical(dataset(wc)["normalisation"]),
        grid_size=lambda wc: dataset(wc)["grid_size"],
        validation_fraction=lambda wc: dataset(wc)["validation_fraction"],
        seed=config["seed"],
        options=spatial_options,
        library_id=lambda wc: next(iter(dataset(wc)["source"].values())).get("library_id") or wc.dataset,
        presets=lambda wc: sorted({m["preset"] for m in dataset(wc)["models"].values()}),
    log:
        f"{R}/{{dataset}}/logs/prepare.log",
    conda:
        "../../envs/concept-saliency.yaml"
    script:
        "../scripts/prepare_spatial.py"
