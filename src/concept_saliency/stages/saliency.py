"""The saliency stage: one method, every concept."""

from __future__ import annotations

import logging
import time

import numpy as np

from ..artifacts import Provenance
from ..errors import ConfigError, UserError
from ..progress import Progress

log = logging.getLogger("concept_saliency")


def saliency(*, samples: str, encoder: str, vectors: str, maps: str, method: str, options: dict,
             latent_output=None, chunk_size: int = 64) -> None:
    """Maps of one method for the chosen samples of every concept (``saliency/<method>.h5``)."""
    import h5py

    from ..artifacts import create_h5
    from ..backend import describe_device
    from ..concepts import read_concepts
    from ..data.samples import SampleStore
    from ..model import load_model
    from ..saliency import get_method

    cls = get_method(method)
    opts = cls.validate_options(options or {})
    prov = Provenance("saliency", dict(method=method, options=opts, latent_output=latent_output,
                                       chunk_size=chunk_size),
                      {"samples": samples, "encoder": encoder, "concepts": vectors})
    cs = read_concepts(vectors)
    device = describe_device()
    log.info("%s on %s", method, device)
    prov.extra["device"] = device
    progress = Progress(f"{method}: maps", sum(len(cs.explain[n]) for n in cs.names), "maps",
                        every=10)
    model = load_model(encoder, "encoder")
    try:
        explainer = cls(model, cs.vectors, latent_output=latent_output, chunk_size=chunk_size)
    except ConfigError as exc:
        if "dimensions" not in str(exc):
            raise
        raise ConfigError(f"{vectors} and {encoder}: {exc} Rerun the encode and concepts stages "
                          f"with this encoder (snakemake --forcerun encode).") from None
    t0 = time.time()
    with SampleStore(samples) as store, create_h5(maps, "csm.saliency") as f:
        f.attrs["method"] = method
        f.attrs["options"] = repr(opts)
        n_total = 0
        for k, name in enumerate(cs.names):
            idx = cs.explain[name]
            x = store.read(idx)
            m = explainer.attribute(x, concept=k, **opts)
            if not np.isfinite(m).all():
                raise UserError(f"{method}: non-finite attributions for concept '{name}'; check the "
                                f"inputs for NaN values")
            g = f.create_group(name)
            g.create_dataset("indices", data=idx)
            g.create_dataset("ids", data=np.asarray([store.ids[i] for i in idx], dtype=object),
                             dtype=h5py.string_dtype())
            g.create_dataset("maps", data=m)
            g.create_dataset("scores", data=explainer.scores(x, k))
            n_total += len(idx)
            progress.update(len(idx))
    rate = n_total / max(time.time() - t0, 1e-9)
    prov.extra["maps_per_s"] = round(rate, 2)
    prov.write(maps, "csm.saliency")
    log.info("%s: %d maps for %d concepts, %.1f maps/s", method, n_total, len(cs.names), rate)


def read_maps(path: str, concept: str) -> dict:
    from ..artifacts import open_h5

    with open_h5(path, "csm.saliency") as f:
        g = f[concept]
        return {"indices": g["indices"][()], "maps": g["maps"][()], "scores": g["scores"][()],
                "method": str(f.attrs["method"])}
