"""The evaluation stage: every method's maps scored side by side (one table and one figure)."""

from __future__ import annotations

import logging

import keras
import numpy as np
import pandas as pd

from ..artifacts import write_tsv
from ..concept_vectors import read_concepts
from ..data.samples import SampleStore
from ..data.grid import read_grid
from ..evaluation import (RANKING_RULE, evaluation_table, random_relevance, randomisation_check,
                          score_curves)
from ..model import latent_model, load_model
from ..plotting import plot_evaluation, save_figure
from ..saliency import get_method
from ..saliency.autodiff import ScoreGradient
from ..saliency_maps import read_maps

log = logging.getLogger("concept_saliency")


def _spread(explain: dict, limit: int) -> list[tuple[str, int]]:
    """Up to ``limit`` (concept, sample) pairs, taking each concept's samples in turn."""
    pairs, depth = [], max((len(v) for v in explain.values()), default=0)
    for i in range(depth):
        for name, idx in explain.items():
            if i < len(idx) and len(pairs) < limit:
                pairs.append((name, int(idx[i])))
    return pairs


def evaluate(*, samples: str, encoder: str, concepts: str, maps: list, summary: str,
             randomisation: str, curves: str, figure: str, methods: dict,
             localisation: str | None = None, grid: str | None = None, chunk_size: int = 64,
             curve_steps: int = 16, fill_value: float = 0.0, randomisation_samples: int = 8,
             randomisation_threshold: float = 0.5, seed: int = 0) -> dict:
    """Deletion/insertion curves of every method's maps, the cascading randomisation check on a
    copy of the encoder, and (when given) the ``localisation`` table, as one method x metric table
    (``summary``) with the methods ranked (:data:`concept_saliency.evaluation.RANKING_RULE`).
    With a tissue ``grid``, the features are its spots (grid pixels without a spot are left out).
    Returns the ranking and its rule."""
    cs = read_concepts(concepts)
    features = read_grid(grid)[0].tissue_mask() if grid else None
    model = latent_model(load_model(encoder, "encoder"))
    engine = ScoreGradient(model, chunk_size=chunk_size)

    def scores(x, concept):
        return engine.scores(x, cs.vectors[np.asarray(concept)].astype(engine.dtype))

    # ---- deletion and insertion, on the maps the saliency stage wrote
    curve_sets, long_rows = {}, []
    with SampleStore(samples) as store:
        for path in maps:
            per_concept = [read_maps(path, name) | {"k": k} for k, name in enumerate(cs.names)]
            method = per_concept[0]["method"]
            x = np.concatenate([store.read(r["indices"]) for r in per_concept])
            m = np.concatenate([r["maps"] for r in per_concept])
            k = np.concatenate([np.full(len(r["indices"]), r["k"]) for r in per_concept])
            curve_sets[method] = score_curves(scores, x, m, k, curve_steps, fill_value, features)
            if "random" not in curve_sets:
                curve_sets["random"] = score_curves(scores, x, random_relevance(m.shape, seed), k,
                                                    curve_steps, fill_value, features)
        pairs = _spread(cs.explain, randomisation_samples)
        x_rand = store.read(np.array([i for _, i in pairs]))
    curve_sets = {m: curve_sets[m] for m in [*[m for m in curve_sets if m != "random"], "random"]}
    for method, c in curve_sets.items():
        for kind in ("deletion", "insertion"):
            mean = np.nanmean(c[kind], axis=0)
            long_rows += [{"method": method, "kind": kind, "fraction": f, "score": s}
                          for f, s in zip(c["fractions"], mean)]
    curve_table = pd.DataFrame(long_rows)

    # ---- cascading randomisation, on a copy of the encoder
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    concept_of = np.array([cs.names.index(n) for n, _ in pairs])
    explain = {}
    for method, options in methods.items():
        cls = get_method(method)
        opts = cls.validate_options(options or {})
        explainer = cls(copy, cs.vectors, chunk_size=chunk_size)
        explain[method] = lambda x, e=explainer, o=opts: e.attribute(x, concept=concept_of, **o)
    rand_table = randomisation_check(copy, explain, x_rand, seed=seed, features=features)

    located = pd.read_csv(localisation, sep="\t") if localisation else None
    table = evaluation_table(curve_sets, rand_table, located, randomisation_threshold)
    write_tsv(table, summary)
    write_tsv(rand_table, randomisation)
    write_tsv(curve_table, curves)
    save_figure(plot_evaluation(rand_table, curve_table, randomisation_threshold,
                                title="saliency methods: randomisation check, deletion and insertion"),
                figure)
    ranked = table.dropna(subset=["rank"]).sort_values("rank")
    log.info("ranking: %s (%s)", ", ".join(ranked["method"]), RANKING_RULE)
    for _, r in table.iterrows():
        log.info("%-22s deletion AUC %.3f  insertion AUC %.3f  randomised rank corr %s",
                 r["method"], r["deletion_auc"], r["insertion_auc"],
                 "-" if pd.isna(r.get("randomised_spearman")) else
                 f"{r['randomised_spearman']:.2f} ({r['randomisation_check']})")
    return {"ranking": list(ranked["method"]), "ranking_rule": RANKING_RULE}
