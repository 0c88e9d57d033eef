"""Stability across retraining: are the maps and scores of models trained with other seeds alike?

A map is evidence about the concept only if another training of the same model on the same
data gives a similar map of the same sample. For models trained with several seeds,
:func:`map_agreement` gives the Spearman rank correlation between the maps of each pair of
seeds (per sample, over the features: pixels with channels summed, or spots), and
:func:`score_agreement` that of the concept scores over every sample. A method whose maps
agree less than ``threshold`` across seeds is flagged ``unstable``. :func:`consensus_map`
averages the seeds' maps of one thing (a concept's map on a tissue's spots): what the
trainings agree on stays, what one training alone shows is diluted.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from .concept_vectors import ConceptSet, read_concepts
from .errors import ArtifactError
from .evaluation import flat_maps, spearman_rows


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
