"""What a Keras 3 ``.keras`` file says about its model, read without Keras.

A ``.keras`` file is a zip archive whose ``config.json`` describes the model. The workflow
reads the input shape of a user's encoder from it while it builds the DAG (to size the spot
grid of a spatial dataset, and to refuse a grid the encoder cannot take before any job
runs), so this module is light on purpose: standard library only, nothing is built or
loaded. The import stages load the model itself, in safe mode, and check it for real.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path


def _input_layer_names(config: dict) -> list[str] | None:
    """The names of a functional model's inputs: ``input_layers`` is ``[name, 0, 0]`` for one
    input, a list of those for several, or a dict of them."""
    spec = config.get("input_layers")
    if isinstance(spec, dict):
        spec = list(spec.values())
    if not isinstance(spec, list) or not spec:
        return None
    if isinstance(spec[0], str):
        return [spec[0]]
    return [item[0] for item in spec if isinstance(item, list) and item and isinstance(item[0], str)]


def _shape(value) -> tuple | None:
    if not isinstance(value, list) or not value:
        return None
    if not all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in value):
        return None
    return tuple(value[1:])


def input_shape(path: str | Path) -> tuple | None:
    """The shape of one input of the model in ``path``, without the batch axis (``None`` for a
    free axis), e.g. ``(32, 32, 1)``; ``None`` when the file does not say it plainly (not a
    zip, no ``config.json``, several inputs, a subclassed model without a build shape)."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    if not isinstance(config, dict):
        return None
    inner = config.get("config") if isinstance(config.get("config"), dict) else {}
    layers = inner.get("layers") if isinstance(inner.get("layers"), list) else []
    names = _input_layer_names(inner)
    if names is not None:  # a functional model
        if len(names) != 1:
            return None
        for layer in layers:
            if isinstance(layer, dict) and layer.get("name") == names[0] \
                    and layer.get("class_name") == "InputLayer":
                return _shape((layer.get("config") or {}).get("batch_shape"))
        return None
    if layers and isinstance(layers[0], dict) and layers[0].get("class_name") == "InputLayer":
        return _shape((layers[0].get("config") or {}).get("batch_shape"))  # a Sequential model
    build = config.get("build_config")
    return _shape(build.get("input_shape")) if isinstance(build, dict) else None
