"""The import_decoder stage: the user's own decoder, beside the user's own encoder (spatial data)."""

from __future__ import annotations

import logging

import numpy as np

from ..artifacts import atomic_path
from ..data.samples import SampleStore
from ..errors import ConfigError, InputDataError
from ..model import load_model

log = logging.getLogger("concept_saliency")


def import_decoder(*, samples: str, encoder: str, decoder_file: str, decoder: str,
                   key: str = "decoder_file", check_samples: int = 8) -> dict:
    """Check a user's ``.keras`` decoder against the imported ``encoder`` and the data, and write it.

    The file is loaded in safe mode. It must have one input, the latent (as many values as the
    encoder's latent output), and one output, a gene image shaped as the samples (e.g.
    ``(32, 32, 1)``), finite for the latents of a few samples. What is written (``decoder``) is
    the model as loaded, which the spatial_maps stage uses to decode the concept vectors. ``key``
    names the config key in errors. Returns the decoder's output shape.
    """
    model = load_model(decoder_file, "decoder")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ConfigError(f"config key '{key}': {decoder_file} has {len(model.inputs)} inputs and "
                          f"{len(model.outputs)} outputs; a decoder takes the latent and gives a gene image")
    latent = load_model(encoder, "encoder")
    latent_dim = int(latent.outputs[0].shape[-1])
    takes = tuple(model.inputs[0].shape[1:])
    if takes not in ((latent_dim,), (None,)):
        raise ConfigError(f"config key '{key}': {decoder_file} takes inputs shaped {takes}, but the "
                          f"encoder's latent has {latent_dim} values; give the decoder of this encoder")
    with SampleStore(samples) as store:
        shape = tuple(store.sample_shape)
        x = store.read(np.arange(min(check_samples, len(store))))
    gives = tuple(model.outputs[0].shape[1:])
    if len(gives) != len(shape) or any(g not in (None, s) for g, s in zip(gives, shape)):
        raise ConfigError(f"config key '{key}': {decoder_file} gives outputs shaped {gives}, but the gene "
                          f"images of {samples} are {shape}; give a decoder to this grid")
    z = np.asarray(latent(x.astype(latent.inputs[0].dtype), training=False))
    out = np.asarray(model(z.astype(model.inputs[0].dtype), training=False))
    if out.shape[1:] != shape:
        raise ConfigError(f"config key '{key}': {decoder_file} gives outputs shaped {out.shape[1:]}, but the "
                          f"gene images of {samples} are {shape}; give a decoder to this grid")
    if not np.isfinite(out).all():
        raise InputDataError(f"{decoder_file}: the decoder gives NaN or infinite values for the latents "
                             f"of the samples of {samples}")
    with atomic_path(decoder) as tmp:
        model.save(tmp)
    log.info("imported %s: latent of %d values -> gene images %s", decoder_file, latent_dim, shape)
    return {"output_shape": list(shape)}
