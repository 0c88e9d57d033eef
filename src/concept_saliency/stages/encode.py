"""The encode stage: latent means of every sample."""

from __future__ import annotations

import logging

import numpy as np

from ..artifacts import Provenance
from ..errors import UserError

log = logging.getLogger("concept_saliency")


def encode(*, samples: str, encoder: str, latents: str, latent_output=None,
           batch_size: int = 256) -> None:
    from ..data.samples import SampleStore
    from ..encoding import encode_store, write_latents
    from ..model import latent_model, load_model

    prov = Provenance("encode", dict(latent_output=latent_output, batch_size=batch_size),
                      {"samples": samples, "encoder": encoder})
    latent = latent_model(load_model(encoder, "encoder"), latent_output)
    with SampleStore(samples) as store:
        z = encode_store(latent, store, batch_size)
        if not np.isfinite(z).all():  # the inputs were checked as they were read
            raise UserError(f"{samples}: the encoder gave NaN or infinite latents; check the inputs "
                            f"for NaN values and the model for divergence")
        write_latents(latents, z, store.ids, store.split)
    prov.write(latents, "csm.latents")
    log.info("encoded %d samples into %d latent dimensions", *z.shape)
