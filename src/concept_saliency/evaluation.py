"""Scoring saliency methods: model randomisation, deletion and insertion, and their ranking.

(Where the maps point, against known regions: :mod:`concept_saliency.localisation`.)

**Model-parameter randomisation** (Adebayo et al. 2018, cascading): the
encoder's layers are re-initialised one at a time from the top (the latent
layer) down, and after each step the maps of every method are recomputed and
compared with the original maps by the Spearman rank correlation of their
absolute values. A map that explains the model must change as the model is
destroyed: a method whose maps still correlate with the originals at
``threshold`` or more once every layer is random *fails* the check.

**Deletion and insertion** (Petsiuk et al. 2018): the input's features
(pixels or spots, channels together) are removed (set to ``fill``) in the
order of the map, most relevant first, and the concept score is followed;
insertion starts from the filled input and puts the most relevant features
back first. Scores are normalised to 1 for the input and 0 for the filled
input, so the area under the deletion curve is small and the area under
the insertion curve large for a map that ranks the features well (a random
order gives about the same area for both).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd



def flat_maps(maps: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
    """``(N, H, W[, C])`` maps -> ``(N, F)`` signed values per pixel (channels summed); only the
    ``features`` (a bool ``(H, W)`` mask: a tissue's spots) where given."""
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim == 4:
        maps = maps.sum(axis=-1)
    flat = maps.reshape(len(maps), -1)
    return flat if features is None else flat[:, np.asarray(features, dtype=bool).reshape(-1)]


def feature_relevance(maps: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
    """``(N, H, W[, C])`` maps -> ``(N, F)`` absolute relevance per pixel (the channels' absolute
    values summed); only the ``features`` where given."""
    return flat_maps(np.abs(np.asarray(maps, dtype=np.float64)), features)


def random_relevance(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """A random map (uniform noise): the baseline every method is compared with."""
    return np.random.default_rng(seed).random(shape)


# ---------------------------------------------------------------- model randomisation


def spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation of each row of ``a`` with the same row of ``b`` (0 for a constant row)."""
    from scipy.stats import rankdata

    ra = rankdata(a, axis=1)
    rb = rankdata(b, axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    den = np.sqrt((ra ** 2).sum(axis=1) * (rb ** 2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (ra * rb).sum(axis=1) / den
    return np.where(den > 0, r, 0.0)


def weighted_layers(model) -> list:
    """Layers with weights, from the output down to the input (nested models expanded)."""
    import keras

    def walk(m):
        for layer in m.layers:
            if isinstance(layer, keras.Model):
                yield from walk(layer)
            elif layer.weights:
                yield layer

    return list(walk(model))[::-1]


def reinitialise(layer, seed: int) -> None:
    """Put every variable of ``layer`` back to a fresh draw of its initializer."""
    import keras

    for k, var in enumerate(layer.weights):
        init = getattr(layer, f"{var.name}_initializer", None)
        if init is None:  # a variable without a named initializer: Glorot for matrices, keep vectors
            if len(var.shape) < 2:
                continue
            init = keras.initializers.GlorotUniform()
        init = keras.initializers.get(init)
        config = init.get_config()
        if "seed" in config:
            init = type(init).from_config({**config, "seed": seed * 1000 + k})
        var.assign(np.asarray(init(tuple(var.shape), dtype=var.dtype)))


def randomisation_check(model, explain: dict[str, Callable], x: np.ndarray, seed: int = 0,
                        features: np.ndarray | None = None) -> pd.DataFrame:
    """Cascading randomisation: rank correlation of each method's maps with its original maps.

    ``model`` is a copy the check may destroy; ``explain`` maps a method name to
    ``f(x) -> maps`` computed with ``model`` (its weights are re-assigned in place,
    so compiled functions stay valid). One row per method and step: step 0 is the
    intact model, step k has the top k weighted layers re-initialised. ``features``:
    a bool mask of the spatial positions that are features (the spots of a tissue
    grid); all positions by default.
    """
    def relevance(maps):
        return feature_relevance(maps, features)

    original = {m: relevance(f(x)) for m, f in explain.items()}
    rows = [{"method": m, "step": 0, "layer": "(none)", "spearman": 1.0, "spearman_sd": 0.0}
            for m in explain]
    for step, layer in enumerate(weighted_layers(model), start=1):
        reinitialise(layer, seed + step)
        for m, f in explain.items():
            r = spearman_rows(original[m], relevance(f(x)))
            rows.append({"method": m, "step": step, "layer": layer.name, "spearman": float(r.mean()),
                         "spearman_sd": float(r.std())})
    return pd.DataFrame(rows)


def randomisation_verdict(table: pd.DataFrame, threshold: float = 0.5) -> pd.DataFrame:
    """Per method: rank correlation once every layer is random, and 'pass' when below ``threshold``."""
    last = table.loc[table.groupby("method", sort=False)["step"].idxmax()]
    out = last[["method", "spearman"]].rename(columns={"spearman": "randomised_spearman"})
    out["randomisation_check"] = np.where(out["randomised_spearman"] < threshold, "pass", "FAIL")
    return out.reset_index(drop=True)


# ---------------------------------------------------------------- deletion and insertion


def feature_order(maps: np.ndarray) -> np.ndarray:
    """Features (pixels, channels summed) of each map, most relevant (largest value) first."""
    m = np.asarray(maps, dtype=np.float64)
    if m.ndim >= 3:
        m = m.sum(axis=-1)
    m = m.reshape(len(m), -1)
    return np.argsort(-m, axis=1, kind="stable")


def score_curves(scores: Callable[[np.ndarray, np.ndarray], np.ndarray], x: np.ndarray,
                 maps: np.ndarray, concept: np.ndarray, steps: int = 16,
                 fill: float = 0.0, features: np.ndarray | None = None,
                 min_span: float = 0.05) -> dict[str, np.ndarray]:
    """Normalised concept scores as features are deleted / inserted in the order of ``maps``.

    ``scores(inputs, concept_indices)`` gives concept scores. Returns
    ``fractions`` ``(steps + 1,)`` and ``deletion`` / ``insertion`` ``(N, steps + 1)``:
    ``(s(x_k) - s(filled)) / (s(x) - s(filled))``; NaN rows where ``s(x)`` and
    ``s(filled)`` differ by less than ``min_span`` of the larger of the two (filling the
    input then barely changes the score, and dividing by that difference only magnifies
    noise: one such sample can outweigh all the others in a mean). ``features``: a bool mask of the
    spatial positions that are features (the spots of a tissue grid; the others are
    never touched); all positions by default.
    """
    x = np.asarray(x)
    n = len(x)
    spatial = x.shape[1:-1] if x.ndim == 4 else x.shape[1:]
    positions = np.flatnonzero(np.ones(spatial, bool) if features is None else np.asarray(features, bool))
    n_features = len(positions)
    order = feature_order(np.asarray(maps).reshape(n, -1, *x.shape[len(spatial) + 1:])[:, positions])
    fractions = np.linspace(0.0, 1.0, steps + 1)
    counts = np.round(fractions * n_features).astype(int)
    curves = {"deletion": np.empty((n, steps + 1)), "insertion": np.empty((n, steps + 1))}
    concept = np.broadcast_to(np.asarray(concept), (n,))
    for i in range(n):
        rank = np.full(int(np.prod(spatial)), n_features)  # non-features: never taken
        rank[positions[order[i]]] = np.arange(n_features)
        # (steps + 1, H, W): feature already taken out (deletion) / put back (insertion) at step k
        taken = (rank[None, :] < counts[:, None]).reshape(steps + 1, *spatial)
        if x.ndim == 4:
            taken = taken[..., None]
        xi = x[i][None]
        deleted = np.where(taken, fill, xi)
        inserted = np.where(taken, xi, fill)
        s = scores(np.concatenate([deleted, inserted]).astype(x.dtype),
                   np.full(2 * (steps + 1), concept[i]))
        full, empty = s[0], s[steps]  # intact input, filled input
        span = full - empty
        ok = abs(span) > min_span * max(abs(full), abs(empty), 1e-12)
        curves["deletion"][i] = (s[:steps + 1] - empty) / span if ok else np.nan
        curves["insertion"][i] = (s[steps + 1:] - empty) / span if ok else np.nan
    curves["fractions"] = fractions
    return curves


def curve_auc(fractions: np.ndarray, curves: np.ndarray) -> np.ndarray:
    """Area under each row of ``curves`` over ``fractions`` (trapezoid rule)."""
    return np.trapezoid(curves, fractions, axis=-1)


def evaluation_table(curves: dict[str, dict], randomisation: pd.DataFrame | None = None,
                     localisation: pd.DataFrame | None = None, threshold: float = 0.5) -> pd.DataFrame:
    """One row per method (and the random map): every metric side by side, and their ranking
    (:func:`rank_methods`).

    ``curves``: method -> :func:`score_curves` output; ``randomisation``:
    :func:`randomisation_check` rows; ``localisation``: the localise stage's table
    (:func:`concept_saliency.localisation.summarise`), where the data know regions.
    """
    from .localisation import method_localisation

    rows = []
    for method, c in curves.items():
        dele = curve_auc(c["fractions"], c["deletion"])
        ins = curve_auc(c["fractions"], c["insertion"])
        rows.append({"method": method, "n_maps": int(np.isfinite(dele).sum()),
                     "deletion_auc": float(np.nanmean(dele)), "insertion_auc": float(np.nanmean(ins))})
    table = pd.DataFrame(rows)
    table["faithfulness"] = table["insertion_auc"] - table["deletion_auc"]
    if localisation is not None and len(localisation):
        table = table.merge(method_localisation(localisation), on="method", how="left")
    if randomisation is not None and len(randomisation):
        table = table.merge(randomisation_verdict(randomisation, threshold), on="method", how="left")
    return rank_methods(table)


#: How :func:`rank_methods` orders the methods, as the report states it.
RANKING_RULE = (
    "Methods whose maps fail the randomisation check (they do not depend on what the model "
    "learned) come last. The others are ordered by the mean of their ranks among themselves in "
    "faithfulness (insertion AUC minus deletion AUC: the map orders features by their effect on "
    "the concept score) and, where the data know regions, localisation (the AUROC of each "
    "concept's map for its own region: of the map's magnitude on images, whose pixels take the "
    "sign of the local contrast, of the signed map on tissue) and, over the seeds of a model "
    "trained several times, stability (the rank correlation of the same samples' maps across the "
    "seeds); the failing methods follow, ordered alike among themselves; ties go to the more "
    "faithful. The first is recommended.")


def _mean_rank(table: pd.DataFrame) -> pd.Series:
    """The mean over the criteria of each row's rank (1 = best) among the rows of ``table``."""
    scores = [table["faithfulness"].rank(ascending=False)]
    for criterion in ("localisation_auroc", "stability"):
        if criterion in table and table[criterion].notna().any():
            scores.append(table[criterion].rank(ascending=False, na_option="bottom"))
    return pd.concat(scores, axis=1).mean(axis=1)


def rank_methods(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with ``rank`` (1 = best) and ``recommended`` by :data:`RANKING_RULE`; the random
    map is not ranked. ``faithfulness`` is always ranked, ``localisation_auroc`` and ``stability``
    where the table has them (a method without a value ranks last in that column). Methods that
    pass the randomisation check are ranked among themselves, so a failing method never changes
    their order."""
    table = table.copy()
    methods = table[table["method"] != "random"]
    failed = (methods["randomisation_check"] == "FAIL") if "randomisation_check" in methods \
        else pd.Series(False, index=methods.index)
    mean_rank = pd.concat([_mean_rank(methods[~failed]), _mean_rank(methods[failed])])
    order = pd.DataFrame({"failed": failed.astype(int), "mean_rank": mean_rank,
                          "faithfulness": -methods["faithfulness"]}).sort_values(
        ["failed", "mean_rank", "faithfulness"], kind="stable")
    table["rank"] = pd.Series(pd.NA, index=table.index, dtype="Int64")
    table.loc[order.index, "rank"] = np.arange(1, len(order) + 1)
    table["recommended"] = table["rank"] == 1
    return table
