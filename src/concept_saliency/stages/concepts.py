"""The concepts stage: vectors, scores, separation, samples to explain."""

from __future__ import annotations

import logging

import numpy as np

from ..artifacts import Provenance
from . import write_table

log = logging.getLogger("concept_saliency")


def concepts(*, latents: str, samples: str, vectors: str, separation: str, histograms: str,
             groups: str, spec: dict, top_k: int, explain_ids: list, seed: int) -> None:
    """Concept vectors, scores, separation (AUROC on held-out samples), samples to explain."""
    import pandas as pd

    from .. import concepts as C
    from ..data.samples import VALIDATION, SampleStore
    from ..encoding import read_latents
    from ..errors import ConfigError
    from ..rendering import plot_score_histograms

    params = dict(spec=spec, top_k=top_k, explain_ids=explain_ids, seed=seed)
    prov = Provenance("concepts", params, {"latents": latents, "samples": samples})
    lat = read_latents(latents)
    z = lat.z
    with SampleStore(samples) as store:
        labels, label_names = store.labels, store.label_names
        extra_idx = store.index_of(explain_ids) if explain_ids else np.array([], dtype=np.int64)
    held_out = lat.split == VALIDATION
    if not held_out.any():
        held_out = np.ones(len(z), dtype=bool)
    fit_on = ~held_out if (~held_out).any() else np.ones(len(z), dtype=bool)
    rng = np.random.default_rng(seed)
    concept_list: list[C.Concept] = []
    group_rows = []

    attributes = spec.get("attributes")
    if attributes:
        names = label_names if attributes == "all" else attributes
        for name in names:
            if name not in label_names:
                raise ConfigError(f"concept '{name}': no such attribute in {samples}")
            positive = labels[:, label_names.index(name)]
            vec, info = C.attribute_vector(z[fit_on], positive[fit_on], spec.get("num_samples"),
                                           rng, name, bool(spec.get("allow_fewer", False)))
            concept_list.append(C.Concept(name, "attribute", vec, positive, info))

    gene_index = {g.lower(): i for i, g in enumerate(lat.ids)}

    def lookup(gene: str, concept: str) -> int:
        try:
            return gene_index[gene.lower()]
        except KeyError:
            raise ConfigError(f"concept '{concept}': gene '{gene}' is not among the {len(lat.ids)} "
                              f"genes of {samples}") from None

    n_genes = int(spec.get("n_genes", 50))
    for name, seed_gene in (spec.get("seed_genes") or {}).items():
        idx, r, p = C.correlated_with(z, lookup(seed_gene, name), n_genes)
        members = np.zeros(len(z), dtype=bool)
        members[idx] = True
        concept_list.append(C.Concept(name, "seed_gene", C.group_vector(z, members), members,
                                      {"seed": seed_gene, "n_genes": n_genes}))
        group_rows += [{"concept": name, "rank": k + 1, "gene": lat.ids[i], "r": float(rr),
                        "p": float(pp)} for k, (i, rr, pp) in enumerate(zip(idx, r, p))]
    for name, genes in (spec.get("gene_sets") or {}).items():
        members = np.zeros(len(z), dtype=bool)
        members[[lookup(g, name) for g in genes]] = True
        concept_list.append(C.Concept(name, "gene_set",
                                      C.group_vector(z, members, bool(spec.get("subtract_rest", False))),
                                      members, {"genes": list(genes)}))
        group_rows += [{"concept": name, "rank": k + 1, "gene": g, "r": float("nan"), "p": float("nan")}
                       for k, g in enumerate(genes)]

    vecs = np.stack([c.vector for c in concept_list])
    scores = C.concept_scores(z, vecs)
    rows, selection = [], {}
    for k, c in enumerate(concept_list):
        if c.kind == "attribute":
            held = held_out
            a = C.auroc(scores[held, k], c.positives[held])
        else:
            held = np.ones(len(z), dtype=bool)
            a = C.auroc(scores[:, k], c.positives)
        pos = c.positives & held
        chosen = C.select_top(scores[:, k], pos if pos.any() else c.positives, top_k)
        selection[c.name] = np.concatenate([chosen, extra_idx])
        rows.append({"concept": c.name, "kind": c.kind, "auroc": a,
                     "evaluated_on": "held-out" if c.kind == "attribute" else "all",
                     "n_positive": int(pos.sum()), "n_negative": int((held & ~c.positives).sum()),
                     "mean_score_positive": float(scores[pos, k].mean()) if pos.any() else float("nan"),
                     "mean_score_negative": float(scores[held & ~c.positives, k].mean())
                     if (held & ~c.positives).any() else float("nan"),
                     **{f"fit_{key}": v for key, v in c.details.items() if key.startswith("n_")}})
    table = pd.DataFrame(rows)
    C.write_concepts(vectors, concept_list, scores, selection, lat.ids)
    prov.write(vectors, "csm.concepts")
    write_table(table, separation, prov)
    write_table(pd.DataFrame(group_rows, columns=["concept", "rank", "gene", "r", "p"]), groups, prov)
    # attribute concepts: held-out samples; group concepts: all samples
    subsets = [held_out if c.kind == "attribute" else np.ones(len(z), bool) for c in concept_list]
    plot_score_histograms([scores[m, k] for k, m in enumerate(subsets)],
                          [c.positives[m] for c, m in zip(concept_list, subsets)],
                          [c.name for c in concept_list], table["auroc"].to_numpy(), histograms,
                          title="concept scores: with vs without")
    prov.write(histograms, "csm.figure")
    for r in rows:
        log.info("concept %-20s AUROC %.3f (%s)", r["concept"], r["auroc"], r["evaluated_on"])
