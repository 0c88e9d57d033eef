"""The concepts stage: concept vectors, scores, separation and the samples to explain."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from .. import concept_vectors as C
from ..artifacts import write_tsv
from ..data.samples import SampleStore
from ..data.spatial import normalisation_note, read_anndata
from ..encoding import read_latents
from ..genes import GeneIndex

log = logging.getLogger("concept_saliency")


def concepts(*, latents: str, samples: str, concepts: str, separation: str, groups: str, spec: dict,
             top_k: int, explain_ids: list, seed: int, anndata: str | None = None) -> None:
    """Write ``concepts`` (vectors, scores of every sample, the samples to explain), the
    ``separation`` table (AUROC per concept: attributes on held-out samples) and ``groups``
    (the genes of each group concept, with their statistics).

    ``spec`` is the dataset's ``concepts`` config: attribute concepts (``attributes``) or gene
    concepts (``seed_genes``, ``gene_sets``, ``regions``; regions need the prepared
    ``anndata``'s spot annotation). ``explain_ids``: samples explained for every concept too.
    """
    lat = read_latents(latents)
    z = lat.z
    genes = GeneIndex(lat.ids, samples)
    with SampleStore(samples) as store:
        labels, label_names = store.labels, store.label_names
        if not explain_ids:
            extra = np.array([], dtype=np.int64)
        elif store.attrs.get("kind") == "spatial-genes":
            extra = genes.find(explain_ids, "config key 'explain.ids'")
        else:
            extra = store.index_of(explain_ids)
    held_out = C.held_out_samples(lat.split)
    fit_on = ~held_out if (~held_out).any() else np.ones(len(z), dtype=bool)

    found: list[C.Concept] = []
    if spec.get("attributes"):
        found += C.attribute_concepts(z, labels, label_names, spec["attributes"], fit_on,
                                      spec.get("num_samples"), bool(spec.get("allow_fewer", False)),
                                      seed, where=samples,
                                      direction=spec.get("direction", "mean_difference"),
                                      shrinkage=float(spec.get("shrinkage", 0.5)),
                                      adjust_for=tuple(spec.get("adjust_for") or ()))
    adata = read_anndata(anndata) if anndata else None
    group_concepts, group_rows = C.gene_concepts(spec, z, genes, adata,
                                                 normalisation_note(adata) if adata is not None else "")
    found += group_concepts
    scores = C.concept_scores(z, np.stack([c.vector for c in found]))
    rows = C.separation(found, scores, held_out)
    C.write_concepts(concepts, found, scores, C.samples_to_explain(found, scores, held_out, top_k, extra),
                     lat.ids)
    write_tsv(pd.DataFrame(rows), separation)
    write_tsv(pd.DataFrame(group_rows, columns=C.GROUP_COLUMNS), groups)
    for r in rows:
        log.info("concept %-20s AUROC %.3f (%s)", r["concept"], r["auroc"], r["evaluated_on"])
