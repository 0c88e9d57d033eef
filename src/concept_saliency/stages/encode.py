"""The encode stage: latent means of every sample."""

from __future__ import annotations

import logging

import numpy as np

from ..data.samples import SampleStore
from ..encoding import encode_store, write_latents
from ..errors import UserError
from ..model import latent_model, load_model

log = logging.getLogger("concept_saliency")


def encode(*, samples: str, encoder: str, latents: str, latent_output=None,
           batch_size: int = 256) -> None:
    """``latents``: the deterministic latent mean of every sample of the store, in its order.

    The samples are checked for NaN and infinite values as they are read; an encoder that
    still gives non-finite latents is refused (a diverged model).
    """
    latent = latent_model(load_model(encoder, "encoder"), latent_output)
    with SampleStore(samples) as store:
        z = encode_store(latent, store, batch_size)
        if not np.isfinite(z).all():  # the inputs were checked as they were read
            raise UserError(f"{samples}: the encoder gave NaN or infinite latents; check the inputs "
                            f"for NaN values and the model for divergence")
        write_latents(latents, z, store.ids, store.split)
    log.info("encoded %d samples into %d latent dimensions", *z.shape)
