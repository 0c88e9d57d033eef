"""What the workflow needs to know from the config before any job runs.

Light on purpose (no Keras import): the Snakefile calls these while it builds
the DAG, e.g. to expand "all attributes" into concept names.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
from pathlib import Path
from urllib.parse import urlparse

from . import sources
from .errors import ConfigError

SOURCES_BY_TYPE = {
    "images": ("synthetic_shapes", "image_folder", "celeba"),
    "spatial": ("synthetic_tissue", "st_counts", "anndata", "visium"),
}


def source_kind(name: str, dataset: dict) -> str:
    """The dataset's source kind, checked against its type."""
    kind = sources.source_kind(name, dataset)
    allowed = SOURCES_BY_TYPE[dataset["type"]]
    if kind not in allowed:
        raise ConfigError(
            f"config key 'datasets.{name}.source': a {dataset['type']} dataset takes "
            f"{' or '.join(allowed)}, not {kind!r}"
        )
    return kind


def table_attributes(path: str | Path, key: str = "labels") -> list[str]:
    """Attribute names of an image folder's label table, read as the prepare stage reads it
    (:func:`concept_saliency.data.label_table.read_label_table`): names that cannot be file names,
    duplicates and bad rows are refused here, before any job runs, as a :class:`ConfigError`
    naming the config ``key``, the file and the line."""
    from .data.label_table import read_label_table
    from .errors import InputDataError

    try:
        return list(read_label_table(path).attributes)
    except InputDataError as exc:
        raise ConfigError(f"config key '{key}': {exc}") from None


def available_attributes(name: str, dataset: dict) -> list[str]:
    kind = source_kind(name, dataset)
    if kind == "synthetic_shapes":
        from .data.synthetic import SHAPE_ATTRIBUTES

        return list(SHAPE_ATTRIBUTES)
    if kind == "image_folder":
        return table_attributes(dataset["source"]["image_folder"]["labels"],
                                f"datasets.{name}.source.image_folder.labels")
    if kind == "celeba":  # fixed, so the DAG is known before anything is downloaded
        return list(sources.CELEBA_ATTRIBUTES)
    return []


#: concept keys that only one dataset type can use
CONCEPT_KEYS_BY_TYPE = {
    "images": ("attributes", "num_samples", "allow_fewer", "adjust_for"),
    "spatial": ("seed_genes", "n_genes", "gene_sets", "regions", "n_markers", "marker_method",
                "subtract_rest", "subtract_regions"),
}


#: dataset keys that only one dataset type can use
DATASET_KEYS_BY_TYPE = {"images": ("image_size",), "spatial": ("normalisation", "grid_size", "max_grid")}


def _check_keys_of_type(name: str, dataset: dict) -> None:
    """Keys of the other dataset type, as the user wrote them (before defaults are filled in),
    are refused: they would be silently ignored."""
    other = "spatial" if dataset["type"] == "images" else "images"
    wrong = [k for k in DATASET_KEYS_BY_TYPE[other] if k in dataset]
    if wrong:
        raise ConfigError(f"config key 'datasets.{name}.{wrong[0]}': applies to {other} datasets "
                          f"only; this one is of type {dataset['type']}. Remove it.")
    spec = dataset.get("concepts") or {}
    wrong = [k for k in CONCEPT_KEYS_BY_TYPE[other] if k in spec]
    if wrong:
        what = ("gene concepts (genes are the samples of spatial data)" if other == "spatial"
                else "attribute concepts (labels of images)")
        raise ConfigError(
            f"config key 'datasets.{name}.concepts.{wrong[0]}': {what} do not apply to "
            f"{'an' if dataset['type'] == 'images' else 'a'} {dataset['type']} dataset; use {', '.join(CONCEPT_KEYS_BY_TYPE[dataset['type']][:4])}")
    if (dataset.get("localisation") or {}).get("enabled") is True and not regions_known(dataset):
        raise ConfigError(
            f"config key 'datasets.{name}.localisation.enabled': the data know no regions to score "
            f"the maps against: the demo data and CelebA do, an image folder with 'regions' boxes or 'masks', "
            f"a spatial source with a spot annotation ('annotation' or 'region_key'); set it to auto")


def regions_known(dataset: dict) -> bool:
    """Whether the data of a dataset come with regions the maps can be scored against."""
    kind, spec = next(iter(dataset["source"].items()))
    return (kind in ("synthetic_shapes", "celeba", "synthetic_tissue")
            or (kind == "image_folder" and bool(spec.get("regions") or spec.get("masks")))
            or (kind in ("st_counts", "visium") and bool(spec.get("annotation")))
            or (kind == "anndata" and bool(spec.get("region_key"))))


def localised(dataset: dict) -> bool:
    """Whether the localise stage runs for a (validated) dataset."""
    enabled = (dataset.get("localisation") or {}).get("enabled", "auto")
    return enabled is True or (enabled == "auto" and regions_known(dataset))


def own_regions(name: str, dataset: dict, names: list[str] | None = None) -> dict[str, str]:
    """Concept -> the region its maps should point at: CelebA attributes to their face part, a
    region concept to its region, every other concept to the region of its own name (the demo's
    shapes, boxes named as attributes); ``localisation.regions`` overrides them. ``names``: the
    dataset's concepts where already known (else :func:`concept_names`, which may read a label
    table). ``ConfigError`` for a region given to a concept that does not exist."""
    from .face_parts import CELEBA_PARTS

    kind = next(iter(dataset["source"]))
    spec = dataset.get("concepts") or {}
    names = concept_names(name, dataset) if names is None else names
    own = {c: c for c in names}
    if kind == "celeba":
        own = {c: CELEBA_PARTS[c] for c in names if c in CELEBA_PARTS}
    for concept, item in (spec.get("regions") or {}).items():
        own[concept] = str(item["region"] if isinstance(item, dict) else item)
    own.update((dataset.get("localisation") or {}).get("regions") or {})
    unknown = [c for c in (dataset.get("localisation") or {}).get("regions") or {} if c not in names]
    if unknown:
        raise ConfigError(f"config key 'datasets.{name}.localisation.regions': no concept named "
                          f"{', '.join(unknown)}; the concepts are {', '.join(names)}")
    return dict(sorted(own.items()))


def expand_seeds(config: dict) -> dict[str, dict[str, list[str]]]:
    """Models that list ``seeds`` become one model per seed, ``<label>-seed<s>``, each trained
    with its seed (``seed``), in place; returns dataset -> label -> the labels of its seeds, for
    the stability report across them."""
    groups: dict[str, dict[str, list[str]]] = {}
    for name, dataset in config["datasets"].items():
        models = {}
        for label, model in dataset["models"].items():
            seeds = model.get("seeds")
            if not seeds:
                models[label] = model
                continue
            runs = [f"{label}-seed{int(s)}" for s in seeds]
            taken = [r for r in runs if r in dataset["models"]]
            if taken:
                raise ConfigError(f"config key 'datasets.{name}.models.{label}.seeds': the model "
                                  f"'{taken[0]}' it would make is already configured; rename one")
            for run, s in zip(runs, seeds):
                models[run] = {k: v for k, v in model.items() if k != "seeds"} | {"seed": int(s)}
            groups.setdefault(name, {})[label] = runs
        dataset["models"] = models
    return groups


def concept_names(name: str, dataset: dict) -> list[str]:
    """The concepts of a dataset, in a fixed order."""
    spec = dataset.get("concepts") or {}
    names: list[str] = []
    attributes = spec.get("attributes")
    if attributes:
        available = available_attributes(name, dataset)
        if attributes == "all":
            names += available
        else:
            unknown = [a for a in attributes if a not in available]
            if unknown:
                raise ConfigError(
                    f"config key 'datasets.{name}.concepts.attributes': unknown attribute(s) "
                    f"{', '.join(unknown)}; the data has {', '.join(available) or 'none'}"
                )
            names += list(attributes)
        unknown = [a for a in spec.get("adjust_for") or () if a not in available]
        if unknown:
            raise ConfigError(
                f"config key 'datasets.{name}.concepts.adjust_for': unknown attribute(s) "
                f"{', '.join(unknown)}; the data has {', '.join(available) or 'none'}"
            )
    names += list((spec.get("seed_genes") or {}).keys())
    names += list((spec.get("gene_sets") or {}).keys())
    names += list((spec.get("regions") or {}).keys())
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ConfigError(f"config key 'datasets.{name}.concepts': concept name(s) used twice: {', '.join(sorted(dup))}")
    if not names:
        raise ConfigError(f"config key 'datasets.{name}.concepts': no concepts defined")
    return names


def _with_defaults(validator_class):
    """A jsonschema validator that also fills in ``default`` values (nested objects too)."""
    from jsonschema import validators

    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub:
                    instance.setdefault(key, copy.deepcopy(sub["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def validate_config(config: dict, schema_path: str | Path) -> dict:
    """Validate ``config`` against the workflow's schema, filling in defaults.

    Before the schema: non-finite numbers (YAML's ``.inf``, ``.nan``) are refused
    wherever they are. After it: keys of the other dataset type, a ``results``
    folder that is empty or the filesystem root; ``~`` and ``$VARS`` in paths are
    expanded. Raises :class:`ConfigError` with one line naming the offending key.
    """
    import yaml
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    _refuse_non_finite(config)
    for name, dataset in (config.get("datasets") or {}).items():
        if isinstance(dataset, dict) and "groundtruth" in dataset:
            raise ConfigError(f"config key 'datasets.{name}.groundtruth': renamed: the maps are scored "
                              f"against known regions whenever the data have them ('localisation: "
                              f"{{enabled: auto}}', the default); remove the key")
    as_written = copy.deepcopy(config)
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = _with_defaults(Draft202012Validator)(schema)
    error = best_match(validator.iter_errors(config))
    if error is not None:
        raise ConfigError(f"config key '{_key(error.absolute_path)}': {_schema_message(error)}")
    for name, dataset in config.get("datasets", {}).items():
        source_kind(name, dataset)
        _check_keys_of_type(name, as_written["datasets"][name])
        explain = dataset.get("explain", {})
        if explain.get("summary_rank", 1) > explain.get("top_k", 1):
            raise ConfigError(f"config key 'datasets.{name}.explain.summary_rank': "
                              f"{explain['summary_rank']} is more than 'explain.top_k' "
                              f"({explain['top_k']}); only the top_k images of each concept have maps")
        for label, model in dataset.get("models", {}).items():
            _check_model(f"datasets.{name}.models.{label}", model)
            if dataset["type"] == "images" and "preset" in model:
                _check_image_size(name, dataset["image_size"], model["preset"])
            if dataset["type"] == "images" and "decoder_file" in model:
                raise ConfigError(f"config key 'datasets.{name}.models.{label}.decoder_file': only spatial "
                                  f"datasets draw the decoded concept vector; remove it")
        if dataset["type"] == "spatial":
            _default_duplicate_genes(name, dataset, as_written["datasets"][name])
    _expand_paths(config, schema)
    _check_results(config["results"])
    for name, dataset in config.get("datasets", {}).items():
        if dataset["type"] == "spatial":
            encoder_grid(name, dataset)  # an encoder that cannot take the spot grid: refused now
            _resolve_regions(name, dataset)
    return config


def _resolve_regions(name: str, dataset: dict) -> None:
    """``concepts.regions`` of a spatial dataset made a mapping concept -> region: ``all`` by
    :func:`all_region_concepts`, ``none`` removed, and left out, :func:`default_region_concepts`
    (the key stays out when that gives none, so a config without an annotation plans as before)."""
    concepts = dataset.setdefault("concepts", {})
    regions = concepts.get("regions")
    if regions == "all":
        concepts["regions"] = all_region_concepts(name, dataset)
    elif regions == "none":
        del concepts["regions"]
    elif "regions" not in concepts:
        found = default_region_concepts(name, dataset)
        if found:
            concepts["regions"] = found


#: ``regions: all`` makes a concept of every region with at least this many annotated spots
MIN_REGION_SPOTS = 10


def region_concept_names(regions: list[str], taken=()) -> dict[str, str]:
    """Concept name -> region for ``regions: all``: the region in lower case, every run of
    other characters than letters, digits, ``.``, ``-`` made one ``_`` (``GCL`` -> ``gcl``,
    ``1: Granular Cell Layer`` -> ``1_granular_cell_layer``); ``region_`` before a name that is
    empty or ``taken`` (another concept's), ``_2``, ``_3``... after one two regions share."""
    out: dict[str, str] = {}
    for region in regions:
        base = re.sub(r"[^a-z0-9.-]+", "_", region.lower()).strip("_.-")
        base = base if base and base not in taken else f"region_{base}".rstrip("_")
        name, k = base, 2
        while name in out or name in taken:
            name, k = f"{base}_{k}", k + 1
        out[name] = region
    return out


def all_region_concepts(name: str, dataset: dict) -> dict[str, str]:
    """``concepts.regions: all`` made explicit: concept -> region for every region of the
    source's annotation with at least :data:`MIN_REGION_SPOTS` annotated spots (a TSV/CSV
    ``annotation``, an .h5ad's ``region_key`` column, the synthetic tissue's layers), read now,
    before any job runs. ``ConfigError`` when the source has no annotation, or it is not on this
    machine yet (an .h5ad to download), or no region is that large."""
    key = f"datasets.{name}.concepts.regions"
    kind, spec = next(iter(dataset["source"].items()))
    spec = spec or {}
    taken = _concepts_taken(dataset)
    if kind == "synthetic_tissue":  # the generator's layers: bands across the whole grid
        return region_concept_names([f"layer{k + 1}" for k in range(int(spec.get("n_layers", 4)))], taken)
    if _annotation_file(kind, spec) is None:
        raise ConfigError(f"config key '{key}': 'all' makes a concept of every annotated region, "
                          f"and this source has no annotation: give the source's "
                          f"{'region_key' if kind == 'anndata' else 'annotation'}, or name the regions")
    counts = _annotated_regions(key, kind, spec)
    kept = _large_regions(counts)
    if not kept:
        raise ConfigError(f"config key '{key}': no region of the annotation has {MIN_REGION_SPOTS} "
                          f"annotated spots and 2 annotated spots outside it (its markers are ranked "
                          f"against those; {', '.join(f'{r}: {n}' for r, n in counts.items()) or 'none'}); "
                          f"name the regions to use")
    return region_concept_names(kept, taken)


def _large_regions(counts: dict[str, int]) -> list[str]:
    """The regions of ``counts`` (region -> annotated spots) a region concept can be made of:
    :data:`MIN_REGION_SPOTS` spots or more, and 2 annotated spots or more outside (its markers
    are ranked against those); in natural order."""
    total = sum(counts.values())
    return sorted((r for r, n in counts.items() if n >= MIN_REGION_SPOTS and total - n >= 2), key=_natural)


def default_region_concepts(name: str, dataset: dict) -> dict[str, str]:
    """The region concepts of a spatial dataset whose config leaves ``concepts.regions`` out:
    those of ``regions: all`` when the source has a spot annotation this machine can read before
    the run (an ``annotation`` file of ``st_counts`` or ``visium``; the ``region_key`` column of a
    local .h5ad), regions under :data:`MIN_REGION_SPOTS` spots left out. None for the
    synthetic tissue (the demo names its own), an .h5ad still to download, an annotation with no
    region that large, or one that is not there (the plan then stops on it as a missing input,
    and a config can be checked without the data). An annotation there that cannot be read is a
    ``ConfigError`` naming the source's key (the run could not prepare the data either) and
    ``regions: none``."""
    kind, spec = next(iter(dataset["source"].items()))
    spec = spec or {}
    local = _annotation_file(kind, spec)
    if local is None or not Path(local).is_file():  # a URL too: nothing to read before the run
        return {}
    key = f"datasets.{name}.source.{kind}" + (".annotation" if kind != "anndata" else "")
    try:
        counts = _annotated_regions(key, kind, spec)
    except ConfigError as exc:
        raise ConfigError(f"{str(exc).rstrip('.')}. Region concepts are made from the annotation when "
                          f"'datasets.{name}.concepts.regions' is left out; 'regions: none' makes none") from None
    return region_concept_names(_large_regions(counts), _concepts_taken(dataset))


def _annotation_file(kind: str, spec: dict) -> str | None:
    """The file a spatial source's spot annotation is read from: its ``annotation`` (``st_counts``,
    ``visium``), or its .h5ad (:func:`_local_path`) when it names a ``region_key``; None without."""
    if kind in ("st_counts", "visium") and spec.get("annotation"):
        return spec["annotation"]
    if kind == "anndata" and spec.get("region_key"):
        return _local_path(spec["path"])
    return None


def _concepts_taken(dataset: dict) -> set[str]:
    concepts = dataset.get("concepts") or {}
    return set(concepts.get("seed_genes") or {}) | set(concepts.get("gene_sets") or {})


def _annotated_regions(key: str, kind: str, spec: dict) -> dict[str, int]:
    """Region -> annotated spots of the source's annotation file or .h5ad column, read now;
    ``ConfigError`` under ``key`` when it cannot be read."""
    from .errors import InputDataError

    try:
        if kind == "anndata":
            return _h5ad_regions(key, spec["path"], spec["region_key"])
        from .data.spot_annotation import annotated_regions

        return annotated_regions(spec["annotation"])
    except InputDataError as exc:
        raise ConfigError(f"config key '{key}': {exc}") from None


def _local_path(path) -> str:
    """The file an .h5ad source ``path`` (a path, a ``file:`` URL as ``Path.as_uri`` writes it, or
    ``{url, checksum}`` of either) names on this machine; a remote URL as it is."""
    from urllib.request import url2pathname

    local = str(path.get("url") if isinstance(path, dict) else path)
    parsed = urlparse(local)
    if parsed.scheme.lower() == "file" and parsed.netloc in ("", "localhost"):
        return url2pathname(parsed.path)
    return local


def _natural(text: str) -> list:
    """Sort key putting cluster 2 before cluster 10."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text)]


def _h5ad_regions(key: str, path, column: str) -> dict[str, int]:
    """Region -> spots of an .h5ad's obs column, read now (so the file must be here)."""
    import numpy as np

    from .data.spatial import region_labels

    local = _local_path(path)
    if not Path(local).is_file():
        raise ConfigError(f"config key '{key}': the regions are read from the .h5ad before the "
                          f"run starts, and {local} is not a file here; name the regions instead")
    import anndata as ad

    try:
        backed = ad.read_h5ad(local, backed="r")
        obs = backed.obs.copy()
        backed.file.close()
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(f"config key '{key}': cannot read {local} ({exc})") from None
    if column not in obs:
        raise ConfigError(f"config key '{key}': {local} has no obs column '{column}' ('region_key')")
    labels, n = np.unique([r for r in region_labels(obs[column]) if r], return_counts=True)
    return dict(zip(labels.tolist(), n.tolist()))


def _default_duplicate_genes(name: str, dataset: dict, as_written: dict) -> None:
    """``normalisation.duplicate_genes`` not written: ``sum`` for a visium source, whose 10x
    references give a few distinct genes (Ensembl ids) one symbol; ``refuse`` otherwise."""
    if source_kind(name, dataset) == "visium" and \
            "duplicate_genes" not in (as_written.get("normalisation") or {}):
        dataset["normalisation"]["duplicate_genes"] = "sum"


def encoder_grid(name: str, dataset: dict) -> tuple[int, str] | None:
    """``(side, config key)``: the spot grid the user's own encoders (``keras_file`` models) of a
    spatial dataset take, read from their files without Keras (:mod:`.keras_files`), and the
    key of the first; ``None`` when no encoder fixes it (a free input size, or one the file does
    not state plainly: the import stage checks those).

    Refused (:class:`ConfigError` naming the key): an input of other than one channel (gene
    images are ``(H, W, 1)``), not square (the grid is), encoders of one dataset taking two
    sizes, a ``grid_size`` other than theirs, a size a preset model of the dataset cannot halve.
    """
    from .keras_files import input_shape
    from .presets import check_input_shape, get_preset

    found: list[tuple[int, str]] = []
    for label, model in dataset.get("models", {}).items():
        if "keras_file" not in model:
            continue
        key = f"datasets.{name}.models.{label}.keras_file"
        shape = input_shape(model["keras_file"])
        if shape is None or len(shape) != 3:
            continue
        height, width, channels = shape
        if channels not in (None, 1):
            raise ConfigError(f"config key '{key}': {model['keras_file']} takes images of {channels} channels; "
                              f"the gene images of a spatial dataset have one (shape (H, W, 1))")
        if None not in (height, width) and height != width:
            raise ConfigError(f"config key '{key}': {model['keras_file']} takes {height}x{width} images; the "
                              f"spot grid is square: give an encoder of square input")
        if height is not None or width is not None:
            found.append((height if height is not None else width, key))
    if not found:
        return None
    side, key = found[0]
    other = next(((s, k) for s, k in found if s != side), None)
    if other:
        raise ConfigError(f"config key '{other[1]}': takes {other[0]}x{other[0]} gene images, but '{key}' "
                          f"takes {side}x{side}: the models of one dataset share its spot grid; give "
                          f"them separate datasets")
    grid = dataset.get("grid_size", "auto")
    if grid != "auto" and int(grid) != side:
        raise ConfigError(f"config key 'datasets.{name}.grid_size': {grid}, but the encoder '{key}' "
                          f"takes {side}x{side} gene images; set grid_size: {side} (or auto)")
    for label, model in dataset.get("models", {}).items():
        if "preset" in model:
            try:
                check_input_shape(get_preset(model["preset"]), (side, side))
            except ConfigError as exc:
                raise ConfigError(f"config key '{key}': it takes {side}x{side} gene images, and model "
                                  f"'{label}' trains on the same grid: {exc}") from None
    return side, key


def _schema_message(error) -> str:
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        return (f"unknown key(s) {', '.join(map(repr, extra))}"
                + (f"; allowed here: {', '.join(allowed)}" if allowed else ""))
    if error.validator == "enum":
        return f"{error.instance!r} is not one of {', '.join(map(repr, error.validator_value))}"
    message = error.message
    if error.validator == "oneOf" and error.schema.get("description"):
        message = f"{error.instance!r} is none of the forms this key takes: {error.schema['description']}"
    if isinstance(error.instance, str) and _looks_like_number(error.instance):
        message += (f" (YAML reads {error.instance} as text: write it with a dot and a signed "
                    f"exponent, e.g. 1.0e-3)")
    return message


def _looks_like_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _refuse_non_finite(value, path=()) -> None:
    """``.inf``, ``-.inf`` and ``.nan`` are numbers to YAML and to the schema's comparisons (NaN is
    neither below a minimum nor above a maximum); no setting of this workflow takes them."""
    if isinstance(value, dict):
        for k, v in value.items():
            _refuse_non_finite(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _refuse_non_finite(v, (*path, i))
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"config key '{_key(path)}': {value} is not a finite number; give a "
                          f"number")


_UNEXPANDED = re.compile(r"\$(\w+|\{\w+\})")


def _expand_path(value: str, key: str) -> str:
    expanded = os.path.expandvars(os.path.expanduser(value))
    left = _UNEXPANDED.search(expanded)
    if left:
        raise ConfigError(f"config key '{key}': {value!r}: the environment variable {left.group(0)} "
                          f"is not set; set it or write the path out")
    if expanded.startswith("~"):
        raise ConfigError(f"config key '{key}': {value!r}: no such user home ('~'); write the path "
                          f"out")
    return expanded


def _expand_paths(value, schema: dict, node: dict | None = None, path=()):
    """``value`` with ``~`` and ``$VARS`` expanded in every string the schema marks
    ``x-path: true``; dicts are updated in place."""
    node = schema if node is None else node
    if "$ref" in node:
        target = schema
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    alternatives = [node, *node.get("oneOf", [])]
    if isinstance(value, str):
        if any(alt.get("x-path") for alt in alternatives):
            return _expand_path(value, _key(path))
        return value
    if isinstance(value, dict):
        for alt in alternatives:
            props = alt.get("properties", {})
            extra = alt.get("additionalProperties")
            for k in list(value):
                sub = props.get(k, extra if isinstance(extra, dict) else None)
                if sub is not None:
                    value[k] = _expand_paths(value[k], schema, sub, (*path, k))
    return value


def _check_results(results: str) -> None:
    if not results.strip():
        raise ConfigError("config key 'results': empty; give the folder that receives every "
                          "artifact, e.g. results")
    if Path(results).resolve() == Path(Path(results).resolve().anchor):
        raise ConfigError(f"config key 'results': {results!r} is the filesystem root; give a "
                          f"folder, e.g. results")


class _DuplicateKeyLoader:
    """PyYAML's safe loader refusing a key given twice in one mapping (PyYAML keeps the last
    silently) and YAML 1.1's octal (``010`` is 8) and base-60 (``3:20`` is 200) integers."""

    @staticmethod
    def make():
        import yaml

        class Loader(yaml.SafeLoader):
            pass

        def mapping(loader, node, deep=False):
            seen = {}
            for key_node, _ in node.value:
                key = loader.construct_object(key_node, deep=deep)
                if key in seen:
                    raise _Duplicate(key, seen[key], key_node.start_mark.line + 1)
                seen[key] = key_node.start_mark.line + 1
            return loader.construct_mapping(node, deep=deep)

        def integer(loader, node):
            text = loader.construct_scalar(node).replace("_", "")
            if re.fullmatch(r"[-+]?0[0-7]+", text) or ":" in text:
                raise _SurprisingNumber(text, node.start_mark.line + 1)
            return yaml.SafeLoader.construct_yaml_int(loader, node)

        Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
        Loader.add_constructor("tag:yaml.org,2002:int", integer)
        return Loader


class _Duplicate(Exception):
    def __init__(self, key, first: int, second: int):
        super().__init__(key, first, second)
        self.key, self.first, self.second = key, first, second


class _SurprisingNumber(Exception):
    def __init__(self, text: str, line: int):
        super().__init__(text, line)
        self.text, self.line = text, line


def check_config_files(paths) -> None:
    """Read each config file strictly: a key given twice in one mapping, and integers that YAML 1.1
    reads in another base (``010``, ``3:20``), are refused naming the file and the line."""
    import yaml

    loader = _DuplicateKeyLoader.make()
    for path in paths:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the config file ({exc})") from None
        try:
            try:
                json.loads(text, object_pairs_hook=_unique_json_keys)
                continue
            except ValueError:
                pass
            reader = loader(text)  # a SafeLoader that refuses duplicate keys
            try:
                reader.get_single_data()
            finally:
                reader.dispose()
        except _Duplicate as exc:
            where = f"line {exc.second}: " if exc.second else ""
            first = f" (first on line {exc.first})" if exc.first else ""
            raise ConfigError(f"{path}: {where}key '{exc.key}' is given twice{first}; only the last "
                              f"would be kept. Keep one.") from None
        except _SurprisingNumber as exc:
            raise ConfigError(f"{path}: line {exc.line}: {exc.text} is read by YAML as a number in "
                              f"base {60 if ':' in exc.text else 8}; quote it, or write it without "
                              f"the leading 0") from None
        except yaml.YAMLError:
            pass  # Snakemake has already reported it


def _unique_json_keys(pairs):
    keys = [k for k, _ in pairs]
    dup = next((k for k in keys if keys.count(k) > 1), None)
    if dup is not None:
        raise _Duplicate(dup, None, None)
    return dict(pairs)


def _check_image_size(name: str, size: int, preset: str) -> None:
    """Before any job: an image size the preset's strides cannot halve evenly (else training
    would stop on it, after the images were packed)."""
    from .presets import check_input_shape, get_preset

    try:
        check_input_shape(get_preset(preset), (size, size))
    except ConfigError as exc:
        raise ConfigError(f"config key 'datasets.{name}.image_size': {exc}") from None


def _check_model(key: str, model: dict) -> None:
    """A model is a preset to train or the user's own encoder (keras_file), exactly one."""
    if ("preset" in model) == ("keras_file" in model):
        raise ConfigError(
            f"config key '{key}': give either 'preset' (train a VAE) or 'keras_file' (your own "
            f"trained encoder), {'not both' if 'preset' in model else 'one of them'}"
        )
    if "keras_file" in model:
        path = Path(model["keras_file"])
        if path.suffix != ".keras":
            raise ConfigError(f"config key '{key}.keras_file': {path} is not a Keras 3 '.keras' file")
        if not path.is_file():
            raise ConfigError(f"config key '{key}.keras_file': no such file: {path}")
    elif model.get("latent_output") is not None:
        raise ConfigError(f"config key '{key}.latent_output': only for a keras_file model "
                          f"(a trained preset's latent is z_mean)")
    if "keras_file" in model and model.get("seeds"):
        raise ConfigError(f"config key '{key}.seeds': only for a preset model (seeds are of training; "
                          f"your own encoder is trained already)")
    if "decoder_file" in model:
        if "keras_file" not in model:
            raise ConfigError(f"config key '{key}.decoder_file': only for a keras_file model (a trained "
                              f"preset has its own decoder)")
        path = Path(model["decoder_file"])
        if path.suffix != ".keras":
            raise ConfigError(f"config key '{key}.decoder_file': {path} is not a Keras 3 '.keras' file")
        if not path.is_file():
            raise ConfigError(f"config key '{key}.decoder_file': no such file: {path}")
