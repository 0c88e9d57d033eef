"""What the workflow needs to know from the config before any job runs.

Light on purpose (no Keras import): the Snakefile calls these while it builds
the DAG, e.g. to expand "all attributes" into concept names.
"""

from __future__ import annotations

import copy
from pathlib import Path

from .errors import ConfigError

SOURCES_BY_TYPE = {
    "images": ("synthetic_shapes", "image_folder", "celeba"),
    "spatial": ("synthetic_tissue", "st_counts", "anndata"),
}


def source_kind(name: str, dataset: dict) -> str:
    source = dataset.get("source") or {}
    if len(source) != 1:
        raise ConfigError(f"config key 'datasets.{name}.source': give exactly one source, not {len(source)}")
    kind = next(iter(source))
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
        from .data.celeba import ATTRIBUTES

        return list(ATTRIBUTES)
    return []


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

    Raises :class:`ConfigError` with one line naming the offending key.
    """
    import yaml
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = _with_defaults(Draft202012Validator)(schema)
    error = best_match(validator.iter_errors(config))
    if error is not None:
        where = _key(error.absolute_path)
        if error.validator == "additionalProperties":
            allowed = sorted(error.schema.get("properties", {}))
            extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
            msg = (f"unknown key(s) {', '.join(map(repr, extra))}"
                   + (f"; allowed here: {', '.join(allowed)}" if allowed else ""))
        elif error.validator == "enum":
            msg = f"{error.instance!r} is not one of {', '.join(map(repr, error.validator_value))}"
        else:
            msg = error.message
        raise ConfigError(f"config key '{where}': {msg}")
    for name, dataset in config.get("datasets", {}).items():
        source_kind(name, dataset)
        for label, model in dataset.get("models", {}).items():
            _check_model(f"datasets.{name}.models.{label}", model)
    return config


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
