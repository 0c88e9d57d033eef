"""Concept vectors in latent space, concept scores and how well they separate.

- attribute concepts (CelebA, the shapes demo): mean latent of samples that
  show the attribute minus the mean of those that don't;
- group concepts (genes): the mean latent of a group of samples, e.g. the genes
  whose latent vectors correlate most with a seed gene, a user's gene set, or
  the marker genes of an annotated tissue region.

The score of a sample ``x`` for concept ``c`` is ``s(x) = c . z(x)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from .artifacts import create_h5, numeric_dataset, open_h5
from .errors import ConfigError

log = logging.getLogger(__name__)
FORMAT = "csm.concepts"


@dataclass
class Concept:
    name: str
    kind: str  # "attribute" | "seed_gene" | "gene_set" | "region"
    vector: np.ndarray  # (D,)
    positives: np.ndarray  # (N,) bool: samples that show the concept (attribute / group members)
    details: dict = field(default_factory=dict)


# ------------------------------------------------------------------ vectors


def attribute_vector(z: np.ndarray, positive: np.ndarray, num_samples: int | None = None,
                     rng: np.random.Generator | None = None, name: str = "",
                     allow_fewer: bool = False) -> tuple[np.ndarray, dict]:
    """Mean latent of ``num_samples`` positives minus ``num_samples`` negatives (all if None)."""
    positive = np.asarray(positive, dtype=bool)
    pos, neg = np.nonzero(positive)[0], np.nonzero(~positive)[0]
    if len(pos) == 0 or len(neg) == 0:
        raise ConfigError(
            f"concept '{name}': needs samples with and without the attribute; "
            f"found {len(pos)} with and {len(neg)} without"
        )
    if num_samples is not None:
        short = min(len(pos), len(neg)) < num_samples
        if short and not allow_fewer:
            raise ConfigError(
                f"concept '{name}': asked for num_samples={num_samples} positives and negatives, "
                f"but there are {len(pos)} positives and {len(neg)} negatives. Lower "
                f"'num_samples', or set 'allow_fewer: true' to use all of them."
            )
        if short:
            log.warning("concept '%s': only %d positives / %d negatives; using all of them",
                        name, len(pos), len(neg))
        rng = rng or np.random.default_rng(0)
        if len(pos) > num_samples:
            pos = rng.choice(pos, num_samples, replace=False)
        if len(neg) > num_samples:
            neg = rng.choice(neg, num_samples, replace=False)
    vector = z[pos].mean(axis=0) - z[neg].mean(axis=0)
    return vector.astype(np.float32), {"n_positive": len(pos), "n_negative": len(neg)}


def group_vector(z: np.ndarray, members: np.ndarray, subtract_rest: bool = False) -> np.ndarray:
    """Mean latent of the group (minus the mean of all other samples if asked)."""
    members = np.asarray(members, dtype=bool)
    if not members.any():
        raise ConfigError("a group concept has no members")
    vector = z[members].mean(axis=0)
    if subtract_rest and (~members).any():
        vector = vector - z[~members].mean(axis=0)
    return vector.astype(np.float32)


def correlated_with(z: np.ndarray, seed: int, n: int):
    """The ``n`` samples whose latent vectors correlate most with sample ``seed``.

    Pearson correlation over latent dimensions (the seed itself comes first, r = 1).
    Returns ``(indices, r, p)`` sorted by decreasing r; p is two-sided.
    """
    from scipy import stats

    z = np.asarray(z, dtype=np.float64)
    zc = z - z.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(zc, axis=1)
    norms[norms == 0] = np.inf
    r = (zc @ zc[seed]) / (norms * norms[seed])
    order = np.argsort(-r, kind="stable")[:n]
    d = z.shape[1]
    rr = np.clip(r[order], -1 + 1e-12, 1 - 1e-12)
    t = rr * np.sqrt((d - 2) / (1 - rr ** 2))
    p = 2 * stats.t.sf(np.abs(t), df=d - 2)
    return order, r[order], p


# ------------------------------------------------------------------ scores


def concept_scores(z: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """``(N, K)`` scores of every sample for every concept."""
    return z @ np.asarray(vectors, dtype=z.dtype).T


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with midranks for ties); NaN if one class is empty."""
    from scipy.stats import rankdata

    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def select_top(scores: np.ndarray, candidates: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest-scoring candidates, best first."""
    idx = np.nonzero(candidates)[0]
    return idx[np.argsort(-scores[idx], kind="stable")[:k]]


# ------------------------------------------------------------------ artifact


def write_concepts(path, concepts: list[Concept], scores: np.ndarray, selection: dict[str, np.ndarray],
                   ids: list[str]) -> None:
    """``concepts.h5``: vectors, positives, scores of all samples, the samples to explain."""
    import h5py

    with create_h5(path, FORMAT) as f:
        s = h5py.string_dtype()
        f.create_dataset("names", data=np.asarray([c.name for c in concepts], dtype=object), dtype=s)
        f.create_dataset("kinds", data=np.asarray([c.kind for c in concepts], dtype=object), dtype=s)
        f.create_dataset("vectors", data=np.stack([c.vector for c in concepts]).astype(np.float32))
        f.create_dataset("positives", data=np.stack([c.positives for c in concepts]))
        f.create_dataset("scores", data=scores.astype(np.float32))
        f.create_dataset("ids", data=np.asarray(ids, dtype=object), dtype=s)
        g = f.create_group("explain")
        for c in concepts:
            g.create_dataset(c.name, data=np.asarray(selection[c.name], dtype=np.int64))


@dataclass
class ConceptSet:
    names: list[str]
    kinds: list[str]
    vectors: np.ndarray
    positives: np.ndarray
    scores: np.ndarray
    ids: list[str]
    explain: dict[str, np.ndarray]

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise ConfigError(f"unknown concept {name!r}; known: {', '.join(self.names)}") from None


def read_concepts(path) -> ConceptSet:
    dec = lambda a: [v.decode() if isinstance(v, bytes) else v for v in a]  # noqa: E731
    with open_h5(path, FORMAT) as f:
        names = dec(f["names"][()])
        num = lambda name: numeric_dataset(f, name, path)[()]  # noqa: E731
        return ConceptSet(names, dec(f["kinds"][()]), num("vectors"), num("positives"),
                          num("scores"), dec(f["ids"][()]),
                          {n: num(f"explain/{n}") for n in names})
