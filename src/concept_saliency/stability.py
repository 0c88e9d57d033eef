"""Stability across retraining: are the maps and scores of models trained with other seeds alike?

A map is evidence about the concept only if another training of the same model on the same
data gives a similar map of the same sample. For models trained with several seeds,
:func:`map_agreement` gives the Spearman rank correlation between the maps of each pair of
seeds (per sample, over the features: pixels with channels summed, or spots), and
:func:`score_agreement` that of the concept scores over every sample. A method whose maps
agree less than ``threshold`` across seeds is flagged ``unstable``. :func:`consensus_map`
averages the seeds' maps of one thing (a concept's map on a tissue's spots): what the
trainings agree on stays, what one training alone shows is diluted. :func:`rank_across_seeds`
ranks the methods once for the model, from every seed's evaluation and the maps' stability:
each training alone may recommend another method.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from .concept_vectors import ConceptSet, read_concepts
from .errors import ArtifactError
from .evaluation import RANKING_RULE, flat_maps, rank_methods, spearman_rows

#: How :func:`rank_across_seeds` ranks the methods of a model trained with several seeds.
SEED_RANKING_RULE = (
    "Each method's faithfulness, localisation and randomised rank correlation are the means of "
    "its rows in the seeds' evaluation tables (it fails the randomisation check when that mean "
    "reaches the threshold); its stability is the mean over the concepts of map_spearman. Then: "
    + RANKING_RULE)


def read_seed_concepts(paths: list) -> list[ConceptSet]:
    """The ``concepts.h5`` of each seed's model of one model, refused (:class:`ArtifactError`)
    unless they hold the same concepts of the same samples."""
    sets = [read_concepts(path) for path in paths]
    for path, cs in zip(paths[1:], sets[1:]):
        if cs.names != sets[0].names or cs.ids != sets[0].ids:
            raise ArtifactError(f"{path} and {paths[0]} do not hold the same concepts of the same "
                                f"samples; rerun the concepts stage of every seed's model")
    return sets


def map_agreement(maps_per_seed: list[np.ndarray], features: np.ndarray | None = None) -> dict[str, float]:
    """Spearman correlation of the maps of the same samples under every pair of seeds: the mean
    and the lowest pair mean, for the signed maps and their magnitude."""
    if len(maps_per_seed) < 2:
        raise ValueError("map agreement needs the maps of at least two seeds")
    flat = [flat_maps(m, features) for m in maps_per_seed]
    signed, magnitude = [], []
    for a, b in combinations(flat, 2):
        signed.append(float(spearman_rows(a, b).mean()))
        magnitude.append(float(spearman_rows(np.abs(a), np.abs(b)).mean()))
    return {"map_spearman": float(np.mean(signed)), "map_spearman_min": float(np.min(signed)),
            "map_spearman_abs": float(np.mean(magnitude))}


def score_agreement(scores_per_seed: list[np.ndarray]) -> float:
    """Mean Spearman correlation, over pairs of seeds, of one concept's scores of every sample."""
    if len(scores_per_seed) < 2:
        raise ValueError("score agreement needs the scores of at least two seeds")
    pairs = [spearman_rows(np.asarray(a)[None], np.asarray(b)[None])[0]
             for a, b in combinations(scores_per_seed, 2)]
    return float(np.mean(pairs))


def consensus_map(maps_per_seed: list[np.ndarray]) -> np.ndarray:
    """The mean of the same map under several seeds, each first divided by its mean |value|
    (each seed's latent space has its own scale, so its maps do; all seeds weigh alike).
    An all-zero map is left as it is."""
    if len(maps_per_seed) < 2:
        raise ValueError("a consensus needs the maps of at least two seeds")
    scaled = []
    for m in maps_per_seed:
        m = np.asarray(m, dtype=np.float64)
        size = np.abs(m).mean()
        scaled.append(m / size if size > 0 else m)
    return np.mean(scaled, axis=0)


def rank_across_seeds(summaries: list[pd.DataFrame], stability: pd.DataFrame,
                      randomisation_threshold: float = 0.5) -> pd.DataFrame:
    """One row per method of a model trained with several seeds, ranked by :data:`SEED_RANKING_RULE`.

    ``summaries``: each seed's ``evaluation/summary.tsv`` as the evaluate stage writes it (the
    same methods; the ``random`` row is left out); ``stability``: the model's ``stability.tsv``.
    Columns: the seeds' means of ``deletion_auc``, ``insertion_auc``, ``faithfulness`` (and its
    lowest, ``faithfulness_min``), ``localisation_auroc`` (where the seeds have it) and
    ``randomised_spearman``; ``randomisation_check`` on that mean and
    ``randomisation_failed_seeds``; ``stability`` (mean
    ``map_spearman``) and ``stable_share`` (the share of concepts flagged stable);
    ``recommended_by_seeds`` (how many seeds' own ranking recommends it); ``rank``, ``recommended``.
    """
    if len(summaries) < 2:
        raise ValueError("a ranking across seeds needs the evaluations of at least two seeds")
    rows = [s[s["method"] != "random"].set_index("method") for s in summaries]
    methods = list(rows[0].index)
    if any(sorted(r.index) != sorted(methods) for r in rows):
        raise ValueError("the seeds' evaluation tables do not rank the same methods")
    # grouped in the order of `methods` (the first seed's): every column below is in that order
    by_method = pd.concat([r.loc[methods] for r in rows]).groupby(level=0, sort=False)
    means = [c for c in ("deletion_auc", "insertion_auc", "faithfulness", "localisation_auroc",
                         "randomised_spearman") if c in rows[0] and rows[0][c].notna().any()]
    table = by_method[means].mean().rename_axis("method").reset_index()
    table.insert(1, "n_seeds", len(rows))
    table.insert(table.columns.get_loc("faithfulness") + 1, "faithfulness_min",
                 by_method["faithfulness"].min().to_numpy())
    table["randomisation_check"] = np.where(table["randomised_spearman"] < randomisation_threshold,
                                            "pass", "FAIL")
    table["randomisation_failed_seeds"] = by_method["randomisation_check"].agg(
        lambda checks: int((checks == "FAIL").sum())).to_numpy()
    maps = stability.groupby("method", sort=False)
    table["stability"] = table["method"].map(maps["map_spearman"].mean())
    table["stable_share"] = table["method"].map(maps["stable"].mean())
    table["recommended_by_seeds"] = by_method["recommended"].agg(
        lambda flags: int(flags.astype(str).str.lower().eq("true").sum())).to_numpy()
    return rank_methods(table)
