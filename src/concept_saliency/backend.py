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
