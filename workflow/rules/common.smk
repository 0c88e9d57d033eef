# Shared helpers: config validation, paths, what each dataset needs.

import os
import re
import sys

SRC = os.path.join(workflow.basedir, "src")
# Scripts (local, conda or cluster jobs) import the library from this checkout.
sys.path.insert(0, SRC)
os.environ.update(
    PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)
)

from concept_saliency.code_closure import (
    stage_code,
)  # a stage's modules: its code input
from concept_saliency.config import (
    check_config_files,
    concept_names,
    expand_seeds,
    encoder_grid,
    localised,
    own_regions,
    source_kind,
    validate_config,
)
from concept_saliency.data.manifest import (
    write_folder_manifest,
    write_image_manifest,
    write_mask_manifest,
)
from concept_saliency.errors import ConfigError, UserError
from concept_saliency.sources import downloads, image_folder, source_files

try:
    check_config_files(workflow.configfiles)
    validate_config(
        config, os.path.join(workflow.basedir, "workflow/schemas/config.schema.yaml")
    )
    # dataset -> model label -> its per-seed models (config's models are expanded in place)
    SEED_GROUPS = expand_seeds(config)
    CONCEPTS = {ds: concept_names(ds, cfg) for ds, cfg in config["datasets"].items()}
    # dataset -> concept -> the region its maps should point at (datasets localised only)
    OWN_REGIONS = {
        ds: own_regions(ds, cfg, CONCEPTS[ds])
        for ds, cfg in config["datasets"].items()
        if localised(cfg)
    }
    # spatial dataset -> (side, config key) of the spot grid its own encoders take, or None
    ENCODER_GRID = {
        ds: encoder_grid(ds, cfg)
        for ds, cfg in config["datasets"].items()
        if cfg["type"] == "spatial"
    }
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

R = config["results"]
# The conda environment the rules run in with --sdm conda (for backend jax, the JAX one)
CONDA_ENV = os.path.join(
    workflow.basedir,
    "envs",
    (
        "concept-saliency-jax.yaml"
        if config["backend"] == "jax"
        else "concept-saliency.yaml"
    ),
)
DATASETS = config["datasets"]
IMAGE_DATASETS = [d for d, c in DATASETS.items() if c["type"] == "images"]
SPATIAL_DATASETS = [d for d, c in DATASETS.items() if c["type"] == "spatial"]
CELEBA_DATASETS = [d for d in IMAGE_DATASETS if source_kind(d, DATASETS[d]) == "celeba"]


def _alternatives(names):
    return "|".join(map(re.escape, names)) if names else "^$"


wildcard_constraints:
    dataset=_alternatives(DATASETS),
    model="[A-Za-z0-9][A-Za-z0-9_.-]*",
    method="[a-z_]+",
    concept="[^/]+",


def canonical(value):
    """A dict param with sorted keys: Snakemake compares params by their text, so
    reordering keys in the config must not rerun anything."""
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


def dataset(wc):
    return DATASETS[wc.dataset]


def model_cfg(wc):
    models = DATASETS[wc.dataset]["models"]
    if wc.model not in models:
        raise WorkflowError(
            f"dataset '{wc.dataset}' has no model '{wc.model}'; its models are "
            f"{', '.join(models)} (a model with seeds runs as <label>-seed<s>)"
        )
    return models[wc.model]


def saliency_cfg(ds_name):
    ds = DATASETS[ds_name]
    return ds.get("saliency") or config.get("saliency") or {}


def methods_of(ds_name):
    methods = list((saliency_cfg(ds_name).get("methods") or {}).keys())
    if not methods:
        raise WorkflowError(
            f"config key 'saliency.methods': no saliency method for dataset '{ds_name}'"
        )
    return methods


def imported(ds_name, model):
    return "keras_file" in DATASETS[ds_name]["models"][model]


def encoder_of(wc):
    """The encoder later stages read: trained from a preset, or the user's own (imported)."""
    name = "imported.keras" if imported(wc.dataset, wc.model) else "encoder.keras"
    return f"{R}/{wc.dataset}/{wc.model}/model/{name}"


def decoder_of(wc):
    """The decoder of the decoded concept vector: the trained VAE's, the user's own
    (decoder_file, imported), or none."""
    base = f"{R}/{wc.dataset}/{wc.model}/model"
    if not imported(wc.dataset, wc.model):
        return {"vae": f"{base}/vae.keras"}
    if "decoder_file" in model_cfg(wc):
        return {"decoder": f"{base}/imported_decoder.keras"}
    return {}


def maps_of(wc):
    return expand(
        f"{R}/{wc.dataset}/{wc.model}/saliency/{{method}}.h5",
        method=methods_of(wc.dataset),
    )


def grid_of(wc):
    if wc.dataset in SPATIAL_DATASETS:
        return {
            "grid": f"{R}/{wc.dataset}/data/grid.h5",
            "spatial_maps": f"{R}/{wc.dataset}/{wc.model}/maps.h5ad",
        }
    return {}


def all_targets():
    """Every output the config asks for, so that a missing or outdated one is always rebuilt,
    even in a results folder without Snakemake's metadata (copied, or .snakemake deleted).
    """
    return [t for ds in DATASETS for t in dataset_targets(ds)]


def dataset_targets(ds):
    cfg, data = DATASETS[ds], f"{R}/{ds}/data"
    kind = source_kind(ds, cfg)
    targets = [f"{data}/samples.h5"]
    if kind == "synthetic_shapes":
        raw = f"{R}/{ds}/raw"
        targets += [f"{raw}/images", f"{raw}/attributes.tsv", f"{raw}/masks.h5"]
    if kind == "synthetic_tissue":
        targets += [f"{R}/{ds}/raw/counts.tsv.gz", f"{R}/{ds}/raw/annotation.tsv"]
    targets += [f"{R}/{ds}/raw/{path}" for path in DOWNLOADS.get(ds, {})]
    if ds in CELEBA_DATASETS:
        targets.append(f"{data}/crop_pack_report.txt")
    if ds in SPATIAL_DATASETS:
        targets += [f"{data}/spatial.h5ad", f"{data}/grid.h5"]
    for model in cfg["models"]:
        targets += model_targets(ds, model)
    for base in SEED_GROUPS.get(ds, {}):
        targets += [
            f"{R}/{ds}/{base}/stability/{f}"
            for f in ("stability.tsv", "stability.png", "ranking.tsv")
        ]
        if ds in SPATIAL_DATASETS:
            targets += [
                f"{R}/{ds}/{base}/stability/{f}"
                for f in ("consensus_maps.h5ad", "consensus.tsv", "consensus.png")
            ]
    return targets


def model_targets(ds, model):
    base = f"{R}/{ds}/{model}"
    if imported(ds, model):
        targets = [f"{base}/model/imported.keras"]
        if "decoder_file" in DATASETS[ds]["models"][model]:
            targets.append(f"{base}/model/imported_decoder.keras")
    else:
        targets = [
            f"{base}/model/{f}"
            for f in ("vae.keras", "encoder.keras", "history.csv", "loss.png")
        ]
    targets.append(f"{base}/latents.h5")
    targets += [
        f"{base}/concepts/{f}"
        for f in ("concepts.h5", "separation.tsv", "groups.tsv", "histograms.png")
    ]
    targets += expand(f"{base}/saliency/{{method}}.h5", method=methods_of(ds))
    targets += expand(f"{base}/figures/{{concept}}.png", concept=CONCEPTS[ds])
    targets += [
        f"{base}/evaluation/{f}"
        for f in ("summary.tsv", "randomisation.tsv", "curves.tsv", "evaluation.png")
    ]
    if ds in SPATIAL_DATASETS:
        targets.append(f"{base}/maps.h5ad")
    if ds in CELEBA_DATASETS:
        targets.append(f"{base}/summary/concept_maps.png")
    if localised(DATASETS[ds]):
        targets += [
            f"{base}/evaluation/{f}"
            for f in (
                "localisation.tsv",
                "localisation_per_sample.tsv",
                "localisation.png",
            )
        ]
    return targets


# --- Inputs of each dataset's first stage (crop_pack, prepare_*), and what to download

try:
    SOURCES = {ds: source_files(ds, cfg, R) for ds, cfg in DATASETS.items()}
    # dataset -> {path under results/<dataset>/raw/ -> file to fetch there}
    DOWNLOADS = downloads(config)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None


# A folder of images reaches its stage with a manifest of its images (name, size, mtime),
# written now, while the DAG is built, and only when it changes: an image rewritten in place
# reruns the stage and all that follows (a folder input counts by its own mtime only).
# Jobs on a cluster read the Snakefile again; only the main process writes manifests.
def _write_manifests():
    for ds, cfg in DATASETS.items():
        folder = image_folder(SOURCES[ds], cfg)
        if folder is None or not workflow.is_main_process:
            continue
        if (
            "manifest" in SOURCES[ds]
        ):  # a user's folder: the images its label table names
            labels = SOURCES[ds]["labels"].path
            write_image_manifest(folder, labels, SOURCES[ds]["manifest"].path)
            if "masks" in SOURCES[ds]:  # region masks: every mask file of the folder
                masks = cfg["source"]["image_folder"]["masks"]
                write_mask_manifest(masks, SOURCES[ds]["masks"].path)
        else:  # CelebA's images given as a folder
            write_folder_manifest(folder, f"{R}/{ds}/raw/celeba_images_manifest.tsv")


try:
    _write_manifests()
except UserError as exc:
    raise WorkflowError(str(exc)) from None


# Regions given with a user's images: packed by their own stage, so editing them reruns the scoring only
REGION_ROLES = ("boxes", "masks")


def source_inputs(wc):
    """Role -> path of every input file of the dataset's first stage."""
    inputs = {
        role: f.path
        for role, f in SOURCES[wc.dataset].items()
        if role not in REGION_ROLES
    }
    if "images" in inputs and image_folder(SOURCES[wc.dataset], dataset(wc)):
        inputs["manifest"] = f"{R}/{wc.dataset}/raw/celeba_images_manifest.tsv"
    return inputs


def region_inputs(wc):
    """The inputs of prepare_regions: the packed images, their table and folder, the regions."""
    files = SOURCES[wc.dataset]
    return {
        "samples": f"{R}/{wc.dataset}/data/samples.h5",
        **{
            role: files[role].path
            for role in ("labels", "manifest", *REGION_ROLES)
            if role in files
        },
    }


def image_regions_given(ds):
    return any(role in SOURCES[ds] for role in REGION_ROLES)


def download_of(wc):
    return DOWNLOADS[wc.dataset][wc.path]


def source_options(wc):
    """The source's own settings (e.g. CelebA's download retries and back-off)."""
    return next(iter(dataset(wc)["source"].values()))


def image_background(wc):
    """Colour of transparent pixels (white, black or [r, g, b]); the demo's shapes have none."""
    return dataset(wc)["source"].get("image_folder", {}).get("background", "white")


def spatial_options(wc):
    """Options of an anndata source (counts_layer, region_key, library_id) or a visium
    source (in_tissue_only, library_id)."""
    source = dataset(wc)["source"]
    if "anndata" in source:
        keys = ("counts_layer", "region_key", "library_id")
    elif "visium" in source:
        keys = ("in_tissue_only", "library_id")
    else:
        return {}
    spec = next(iter(source.values()))
    return canonical({k: spec.get(k) for k in keys})


def grid_size_of(wc):
    """The spot grid's side: the dataset's grid_size, or the one its own encoders take."""
    fixed = ENCODER_GRID.get(wc.dataset)
    size = dataset(wc)["grid_size"]
    return fixed[0] if fixed and size == "auto" else size


def presets_of(wc):
    """The presets trained on the dataset (the grid must suit their strides)."""
    models = dataset(wc)["models"].values()
    return sorted({m["preset"] for m in models if "preset" in m})


def spatial_anndata_of(wc):
    if wc.dataset in SPATIAL_DATASETS:
        return {"anndata": f"{R}/{wc.dataset}/data/spatial.h5ad"}
    return {}


# --- Inputs of the evaluation stages


def localisation_inputs(wc):
    """Where the regions are: the spot grid's annotation, the demo shapes' masks, the boxes
    packed with the images (CelebA) or the regions given with a user's images."""
    if wc.dataset in SPATIAL_DATASETS:
        return grid_if_spatial(wc)
    if source_kind(wc.dataset, dataset(wc)) == "synthetic_shapes":
        return {"masks": f"{R}/{wc.dataset}/raw/masks.h5"}
    samples = {"samples": f"{R}/{wc.dataset}/data/samples.h5"}
    if image_regions_given(wc.dataset):
        return samples | {"image_regions": f"{R}/{wc.dataset}/data/regions.h5"}
    return samples


def seed_runs(wc, artifact):
    """``artifact`` (a path under a model's folder) of each seed's model of ``wc.model``."""
    return [
        f"{R}/{wc.dataset}/{run}/{artifact}"
        for run in SEED_GROUPS[wc.dataset][wc.model]
    ]


def grid_if_spatial(wc):
    return (
        {"grid": f"{R}/{wc.dataset}/data/grid.h5"}
        if wc.dataset in SPATIAL_DATASETS
        else {}
    )


def evaluate_inputs(wc):
    extra = {}
    if localised(dataset(wc)):
        extra["localisation"] = (
            f"{R}/{wc.dataset}/{wc.model}/evaluation/localisation.tsv"
        )
    return extra | grid_if_spatial(wc)
