"""The spatial_maps stage: concept maps back on the tissue spots, in an AnnData.

``results/<dataset>/<model>/maps.h5ad`` (format ``csm.spatial-maps``) is the
prepared AnnData (normalised ``X``, raw ``layers["counts"]``, positions,
image) plus, for every concept ``c`` and saliency method ``m``:

- ``obs["csm_<c>_<m>"]``: the concept map on the spots, averaged over the
  concept's explained member genes (the seed gene and the top-scoring members);
- ``obsm["csm_<c>_<m>"]``: a table spots x explained genes, each gene's own map;
- ``obs["csm_<c>_decoded"]``: the decoded concept vector on the spots (when the model has a
  decoder: a trained preset's, or a user's own ``decoder_file``);
- ``var["csm_score_<c>"]`` and ``var["csm_member_<c>"]``: every gene's concept
  score and whether it belongs to the concept's group;
- ``varm["csm_latent"]``: every gene's latent mean;
- ``uns["csm_concepts"][c]``: kind, concept vector, members, explained genes, methods.

So ``scanpy.pl.spatial(adata, color="csm_penk_vanilla_gradient")`` draws a map.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ..concept_vectors import read_concepts
from ..data.grid import concept_spot_map, pixels_to_spots, read_grid
from ..data.spatial import map_key, read_anndata, write_anndata
from ..encoding import read_latents
from ..errors import ArtifactError
from ..model import load_model
from ..saliency_maps import read_maps, read_method

log = logging.getLogger("concept_saliency")
FORMAT = "csm.spatial-maps"


def spatial_maps(*, anndata: str, grid: str, latents: str, concepts: str, maps: list,
                 spatial_maps: str, vae: str | None = None, decoder: str | None = None,
                 batch_size: int = 256) -> dict:
    """Write ``spatial_maps`` (``maps.h5ad``): the prepared ``anndata`` with every concept's maps
    of every method on the spots, the decoded concept vectors, the genes' latents and concept
    scores (the layout is in the module docstring).

    The concept vectors are decoded by the decoder of the trained ``vae``, or by a user's own
    ``decoder`` (latent -> gene image, imported); with neither, there is no decoded vector.
    """
    adata = read_anndata(anndata)
    index, _ = read_grid(grid)
    cs = read_concepts(concepts)
    lat = read_latents(latents)
    if list(index.spots) != list(adata.obs_names) or list(cs.ids) != list(adata.var_names):
        raise ArtifactError(f"{anndata}, {grid} and {concepts} do not describe the same spots and "
                            f"genes; rerun the workflow from prepare_spatial")
    decode = load_model(vae, "model").decoder if vae else load_model(decoder, "decoder") if decoder else None
    decoded_spots = None
    if decode is not None:
        decoded = np.asarray(decode.predict(cs.vectors, batch_size=batch_size, verbose=0))
        decoded_spots = pixels_to_spots(decoded, index)
    else:
        log.info("no decoder (a model of your own without decoder_file): no decoded concept vectors")
    adata.varm["csm_latent"] = lat.z.astype(np.float32)
    per_method = {read_method(path): path for path in maps}
    info = {}
    for k, name in enumerate(cs.names):
        if decoded_spots is not None:
            adata.obs[map_key(name, "decoded")] = decoded_spots[k].astype(np.float32)
        adata.var[f"csm_score_{name}"] = cs.scores[:, k].astype(np.float32)
        adata.var[f"csm_member_{name}"] = cs.positives[k].astype(bool)
        explained = None
        for method, path in per_method.items():
            r = read_maps(path, name)
            spot_maps = pixels_to_spots(r["maps"], index)  # (genes, spots)
            explained = [cs.ids[i] for i in r["indices"]]
            adata.obs[map_key(name, method)] = concept_spot_map(
                spot_maps, r["indices"], cs.positives[k]).astype(np.float32)
            adata.obsm[map_key(name, method)] = pd.DataFrame(spot_maps.T.astype(np.float32),
                                                             index=adata.obs_names, columns=explained)
        info[name] = {"kind": cs.kinds[k], "vector": cs.vectors[k].astype(np.float32),
                      "members": [g for g, m in zip(cs.ids, cs.positives[k]) if m],
                      "explained": explained or [], "methods": list(per_method)}
    adata.uns["csm_concepts"] = info
    write_anndata(adata, spatial_maps, FORMAT)
    log.info("maps of %d concepts x %d methods written to the spots of %s", len(cs.names),
             len(per_method), spatial_maps)
    return {"decoded": decoded_spots is not None}
