"""The saliency stage: one method's maps for the chosen samples of every concept."""

from __future__ import annotations

import logging
import time

import numpy as np

from ..backend import describe_device
from ..concept_vectors import read_concepts
from ..data.samples import SampleStore
from ..errors import ConfigError, UserError
from ..model import load_model
from ..progress import Progress
from ..saliency import get_method
from ..saliency_maps import maps_writer

log = logging.getLogger("concept_saliency")


def saliency(*, samples: str, encoder: str, concepts: str, maps: str, method: str, options: dict,
             latent_output=None, chunk_size: int = 64) -> dict:
    """``maps``: the maps of ``method`` (with ``options``) for the samples each concept explains.

    Concept vectors made with another encoder (other latent size) are refused; non-finite
    maps are refused. Returns the device and the rate (maps/s).
    """
    cls = get_method(method)
    opts = cls.validate_options(options or {})
    cs = read_concepts(concepts)
    device = describe_device()
    log.info("%s on %s", method, device)
    progress = Progress(f"{method}: maps", sum(len(cs.explain[n]) for n in cs.names), "maps",
                        every=10)
    model = load_model(encoder, "encoder")
    try:
        explainer = cls(model, cs.vectors, latent_output=latent_output, chunk_size=chunk_size)
    except ConfigError as exc:
        if "dimensions" not in str(exc):
            raise
        raise ConfigError(f"{concepts} and {encoder}: {exc} Rerun the encode and concepts stages "
                          f"with this encoder (snakemake --forcerun encode).") from None
    t0, n_total = time.time(), 0
    with SampleStore(samples) as store, maps_writer(maps, method, opts) as out:
        for k, name in enumerate(cs.names):
            idx = cs.explain[name]
            x = store.read(idx)
            m = explainer.attribute(x, concept=k, **opts)
            if not np.isfinite(m).all():
                raise UserError(f"{method}: non-finite attributions for concept '{name}'; check the "
                                f"inputs for NaN values")
            out.add(name, idx, [store.ids[i] for i in idx], m, explainer.scores(x, k))
            n_total += len(idx)
            progress.update(len(idx))
    rate = n_total / max(time.time() - t0, 1e-9)
    log.info("%s: %d maps for %d concepts, %.1f maps/s", method, n_total, len(cs.names), rate)
    return {"device": device, "options_used": opts, "maps_per_s": round(rate, 2)}
