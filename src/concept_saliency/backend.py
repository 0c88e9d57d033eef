"""Choosing the Keras backend and describing the device a stage ran on.

Keras reads ``KERAS_BACKEND`` once, at its first import. Stages call
:func:`use_backend` before importing any module that imports Keras.
"""

from __future__ import annotations

import os
import sys

from .errors import ConfigError

SUPPORTED_BACKENDS = ("tensorflow", "jax")


def use_backend(name: str, threads: int | None = None) -> None:
    """Select the Keras backend (and CPU thread count) for this process."""
    if name not in SUPPORTED_BACKENDS:
        raise ConfigError(
            f"config key 'backend': {name!r} is not supported; use one of {', '.join(SUPPORTED_BACKENDS)}"
        )
    if "keras" in sys.modules:
        current = sys.modules["keras"].backend.backend()
        if current != name:
            raise ConfigError(
                f"Keras was already imported with the {current!r} backend; "
                f"set KERAS_BACKEND={name} before importing keras"
            )
    os.environ["KERAS_BACKEND"] = name
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if threads:
        # Honour the cores the scheduler gave this job (read by TensorFlow at start-up;
        # setting them here avoids importing TensorFlow in stages that don't need it).
        os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
        os.environ["TF_NUM_INTEROP_THREADS"] = str(min(2, threads))
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))


#: the extra of this package that installs each backend
EXTRAS = {"tensorflow": "tensorflow", "jax": "jax"}


def require_keras_backend() -> None:
    """Before the first ``import keras``: the backend Keras will use must be installed, else one
    clear error saying which extra of this package installs it (a plain ``pip install
    concept-saliency`` installs none)."""
    import importlib.util

    if "keras" in sys.modules:
        return
    name = os.environ.get("KERAS_BACKEND") or _configured_backend() or "tensorflow"
    if name in EXTRAS and importlib.util.find_spec(name) is None:
        other = next(b for b in EXTRAS if b != name)
        hint = (f" ({other} is installed: set KERAS_BACKEND={other})"
                if importlib.util.find_spec(other) is not None else "")
        raise ImportError(
            f"Keras' backend '{name}' is not installed: pip install 'concept-saliency[{EXTRAS[name]}]', "
            f"or 'concept-saliency[{EXTRAS[other]}]' and set KERAS_BACKEND={other}{hint}")


def _configured_backend() -> str | None:
    """The backend of Keras' own config file (``~/.keras/keras.json``), if any."""
    import json
    from pathlib import Path

    path = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "keras.json"
    try:
        return json.loads(path.read_text()).get("backend")
    except (OSError, ValueError):
        return None


def backend_name() -> str:
    if "keras" in sys.modules:
        return sys.modules["keras"].backend.backend()
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def describe_device() -> str:
    """A short description of the accelerator the backend will use."""
    name = backend_name()
    try:
        if name == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            return f"tensorflow: {', '.join(g.name for g in gpus)}" if gpus else "tensorflow: CPU"
        if name == "jax":
            import jax

            return "jax: " + ", ".join(f"{d.platform}:{d.device_kind}" for d in jax.devices())
    except Exception as exc:  # pragma: no cover - diagnostics only
        return f"{name}: unknown ({exc})"
    return name
