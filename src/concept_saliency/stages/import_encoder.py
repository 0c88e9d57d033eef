"""The import_encoder stage: the user's own trained encoder instead of a trained preset."""

from __future__ import annotations

import logging

import numpy as np

from ..artifacts import atomic_path
from ..data.samples import SampleStore
from ..errors import ConfigError, InputDataError
from ..model import latent_model, load_model

log = logging.getLogger("concept_saliency")


def import_encoder(*, samples: str, keras_file: str, encoder: str, latent_output=None,
                   key: str = "keras_file", check_samples: int = 8) -> dict:
    """Check a user's ``.keras`` encoder against the data and write its latent model.

    The file is loaded in safe mode; ``latent_output`` names the output that is the latent
    (by layer name or position; ``z_mean`` or the only output by default). The model must
    take the samples as they are stored (shape, values in [0, 1]) and give finite latents for
    a few of them. What is written is the single-output latent model (``encoder``), which
    every later stage reads as it reads a trained encoder. ``key`` names the config key in
    errors. Returns the latent's size.
    """
    model = load_model(keras_file, "encoder")
    try:
        latent = latent_model(model, latent_output)
    except ConfigError as exc:
        raise ConfigError(f"config key '{key}': {keras_file}: {exc}") from None
    if len(latent.inputs) != 1:
        raise ConfigError(f"config key '{key}': {keras_file}: the encoder has {len(latent.inputs)} "
                          f"inputs; concept saliency needs an encoder of one input")
    expected = tuple(latent.inputs[0].shape[1:])
    with SampleStore(samples) as store:
        shape = tuple(store.sample_shape)
        if len(expected) != len(shape) or any(e not in (None, s) for e, s in zip(expected, shape)):
            raise ConfigError(
                f"config key '{key}': {keras_file} takes inputs shaped {expected}, but the samples "
                f"of {samples} are {shape}; set the dataset's image_size (or grid_size) to match, "
                f"or give an encoder for this data"
            )
        x = store.read(np.arange(min(check_samples, len(store))))
    z = np.asarray(latent(x.astype(latent.inputs[0].dtype), training=False))
    if z.ndim != 2:
        raise InputDataError(f"{keras_file}: the latent output gives shape {z.shape[1:]} per sample; "
                             f"a latent must be a vector (flatten it in the model)")
    if not np.isfinite(z).all():
        raise InputDataError(f"{keras_file}: the encoder gives NaN or infinite latents on the samples "
                             f"of {samples}")
    with atomic_path(encoder) as tmp:
        latent.save(tmp)
    log.info("imported %s: latent '%s' of %d dimensions", keras_file, latent.name, z.shape[1])
    return {"latent_dim": int(z.shape[1])}
