"""The concepts stage: vectors, scores, separation, samples to explain."""

from __future__ import annotations

import logging

import numpy as np

from ..artifacts import Provenance
from . import write_table

log = logging.getLogger("concept_saliency")


GROUP_COLUMNS = ["concept", "kind", "rank", "gene", "r", "p", "marker_score", "logfoldchange", "p_adj"]


def concepts(*, latents: str, samples: str, vectors: str, separation: str, histograms: str,
             groups: str, spec: dict, top_k: int, explain_ids: list, seed: int,
             anndata: str | None = None) -> None:
    """Concept vectors, scores, separation (AUROC on held-out samples), samples to explain.

    Gene concepts (spatial data, genes as samples): ``seed_genes``, ``gene_sets`` and
    ``regions`` (marker genes of an annotated region; needs the ``anndata`` of the
    prepare stage). ``groups`` lists every group's genes with their statistics.
    """
    import pandas as pd

    from .. import concepts as C
    from ..data.samples import VALIDATION, SampleStore
    from ..encoding import read_latents
    from ..errors import ConfigError
    from ..genes import GeneIndex
    from ..rendering import plot_score_histograms

    params = dict(spec=spec, top_k=top_k, explain_ids=explain_ids, seed=seed)
    prov = Provenance("concepts", params, {"latents": latents, "samples": samples}
                      | ({"anndata": anndata} if anndata else {}))
    lat = read_latents(latents)
    z = lat.z
    genes = GeneIndex(lat.ids, samples)
    with SampleStore(samples) as store:
        labels, label_names = store.labels, store.label_names
        is_genes = store.attrs.get("kind") == "spatial-genes"
        if not explain_ids:
            extra_idx = np.array([], dtype=np.int64)
        elif is_genes:
            extra_idx = genes.find(explain_ids, "config key 'explain.ids'")
        else:
            extra_idx = store.index_of(explain_ids)
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

    group_rows += _gene_concepts(spec, z, genes, concept_list, anndata)
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
        candidates = (pos if pos.any() else c.positives).copy()
        first = np.asarray([c.details["seed_index"]] if "seed_index" in c.details else [], np.int64)
        candidates[first] = False  # a seed gene is always explained, first
        chosen = np.concatenate([first, C.select_top(scores[:, k], candidates, top_k - len(first))])
        selection[c.name] = np.concatenate([chosen, extra_idx[~np.isin(extra_idx, chosen)]])
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
    write_table(pd.DataFrame(group_rows, columns=GROUP_COLUMNS), groups, prov)
    # attribute concepts: held-out samples; group concepts: all samples
    subsets = [held_out if c.kind == "attribute" else np.ones(len(z), bool) for c in concept_list]
    plot_score_histograms([scores[m, k] for k, m in enumerate(subsets)],
                          [c.positives[m] for c, m in zip(concept_list, subsets)],
                          [c.name for c in concept_list], table["auroc"].to_numpy(), histograms,
                          title="concept scores: with vs without")
    prov.write(histograms, "csm.figure")
    for r in rows:
        log.info("concept %-20s AUROC %.3f (%s)", r["concept"], r["auroc"], r["evaluated_on"])


def _gene_concepts(spec: dict, z: np.ndarray, genes, concept_list: list, anndata: str | None) -> list:
    """Seed-gene, gene-set and region concepts (appended to ``concept_list``); their table rows.

    Refused (:class:`ConfigError`, naming the concept and the key): ``n_genes`` not below the
    number of genes (a concept of every gene leaves none to separate it from: its AUROC is
    undefined), a gene set naming one gene twice or holding every gene, a region whose markers
    are every gene. A region with fewer genes higher inside than ``n_markers`` becomes a concept
    of those genes, with a warning; ``fit_n_genes`` in separation.tsv says how many.
    """
    from .. import concepts as C
    from ..errors import ConfigError

    nan = float("nan")
    rows: list[dict] = []

    def row(name, kind, rank, gene, r=nan, p=nan, score=nan, lfc=nan, p_adj=nan):
        return {"concept": name, "kind": kind, "rank": rank, "gene": gene, "r": r, "p": p,
                "marker_score": score, "logfoldchange": lfc, "p_adj": p_adj}

    def membership(idx, name, key):
        members = np.zeros(len(z), dtype=bool)
        members[idx] = True
        if members.all():
            raise ConfigError(f"concept '{name}' ({key}) holds all {len(z)} genes of the data"
                              f"{_filter_note(anndata)}: no gene is left to separate it from (its AUROC "
                              f"is undefined); leave some genes out")
        return members

    for name, item in (spec.get("seed_genes") or {}).items():
        item = item if isinstance(item, dict) else {"gene": item}
        key = f"concepts.seed_genes.{name}.n_genes" if "n_genes" in item else "concepts.n_genes"
        n_genes = int(item.get("n_genes", spec.get("n_genes", 50)))
        seed_idx = genes.find_one(item["gene"], f"concept '{name}'")
        if n_genes >= len(genes):
            raise ConfigError(f"concept '{name}': config key '{key}' is {n_genes}, but the data have "
                              f"{len(genes)} genes{_filter_note(anndata)}; a concept needs genes outside it "
                              f"(its AUROC is undefined otherwise): set it below {len(genes)}")
        idx, r, p = C.correlated_with(z, seed_idx, n_genes)
        members = membership(idx, name, key)
        concept_list.append(C.Concept(name, "seed_gene", C.group_vector(z, members), members,
                                      {"seed": genes.genes[seed_idx], "n_genes": n_genes,
                                       "seed_index": seed_idx}))
        rows += [row(name, "seed_gene", k + 1, genes.genes[i], float(rr), float(pp))
                 for k, (i, rr, pp) in enumerate(zip(idx, r, p))]
    for name, item in (spec.get("gene_sets") or {}).items():
        item = item if isinstance(item, dict) else {"genes": item}
        idx = genes.find(item["genes"], f"concept '{name}'")
        members = membership(idx, name, f"concepts.gene_sets.{name}")
        subtract = bool(item.get("subtract_rest", spec.get("subtract_rest", False)))
        concept_list.append(C.Concept(name, "gene_set", C.group_vector(z, members, subtract), members,
                                      {"genes": [genes.genes[i] for i in idx], "subtract_rest": subtract,
                                       "n_genes": len(idx)}))
        rows += [row(name, "gene_set", k + 1, genes.genes[i]) for k, i in enumerate(idx)]
    regions = spec.get("regions") or {}
    if regions:
        from ..data.spatial import read_anndata
        from ..genes import region_markers

        if not anndata:
            raise ConfigError("region concepts need spatial data with a spot annotation")
        adata = read_anndata(anndata)
        for name, item in regions.items():
            item = item if isinstance(item, dict) else {"region": item}
            key = item.get("key") or adata.uns.get("csm_region_key") or "region"
            n_key = f"concepts.regions.{name}.n_markers" if "n_markers" in item else "concepts.n_markers"
            n = int(item.get("n_markers", spec.get("n_markers", 50)))
            table = region_markers(adata, key, str(item["region"]), n,
                                   item.get("method", spec.get("marker_method", "wilcoxon")),
                                   f"concept '{name}'")
            idx = genes.find(table["gene"], f"concept '{name}'")
            members = membership(idx, name, n_key)
            if len(idx) < n:
                log.warning("concept '%s': only %d genes are higher in region '%s' than outside, fewer "
                            "than %s %d; the concept is those %d genes", name, len(idx), item["region"],
                            n_key, n, len(idx))
            subtract = bool(item.get("subtract_rest", spec.get("subtract_rest", False)))
            concept_list.append(C.Concept(name, "region", C.group_vector(z, members, subtract), members,
                                          {"region": str(item["region"]), "key": key, "n_markers": n,
                                           "n_genes": len(idx)}))
            rows += [row(name, "region", k + 1, genes.genes[i], p=t.p, score=t.score,
                         lfc=t.logfoldchange, p_adj=t.p_adj)
                     for k, (i, t) in enumerate(zip(idx, table.itertuples()))]
    return rows


def _filter_note(anndata: str | None) -> str:
    """``" (left after the normalisation removed 3271 genes detected in fewer than 10 spots ...)"``
    from the prepared AnnData's record, or ``""`` when none were removed or there is no record."""
    if not anndata:
        return ""
    import h5py

    try:
        with h5py.File(anndata, "r") as f:
            record = f["uns/csm_normalisation"]
            removed, min_spots = int(record["genes_removed"][()]), int(record["min_spots"][()])
    except (OSError, KeyError, TypeError, ValueError):
        return ""
    return (f" (left after the normalisation removed {removed} genes detected in fewer than {min_spots} "
            f"spots: normalisation.min_spots)" if removed else "")
