"""Concept vectors in latent space, concept scores and how well they separate.

- attribute concepts (CelebA, the shapes demo): mean latent of samples that
  show the attribute minus the mean of those that don't (:func:`attribute_concepts`), or
  that difference whitened by the latents' within-class covariance (``direction:
  discriminant``, :func:`discriminant_direction`); with ``adjust_for``, the difference with
  other attributes held fixed (:func:`adjusted_direction`);
- group concepts (genes): the mean latent of a group of samples, e.g. the genes
  whose latent vectors correlate most with a seed gene, a user's gene set, or
  the marker genes of an annotated tissue region (:func:`gene_concepts`); with
  ``subtract_rest`` minus the mean of the other genes (or, with ``direction:
  discriminant``, that difference whitened as for attributes); region concepts with
  ``subtract_regions`` minus the other regions' marker genes as well
  (:func:`contrast_with_other_groups`).

The score of a sample ``x`` for concept ``c`` is ``s(x) = c . z(x)``;
:func:`separation` says how well each concept's scores separate its positives
(AUROC: attribute concepts on held-out samples), :func:`samples_to_explain`
picks the samples whose maps are drawn. ``concepts.h5`` (format ``csm.concepts``)
is written by :func:`write_concepts` and read by :func:`read_concepts`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from .artifacts import create_h5, numeric_dataset, open_h5
from .errors import ConfigError
from .genes import GeneIndex, region_markers

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


DIRECTIONS = ("mean_difference", "discriminant")


def discriminant_direction(z_pos: np.ndarray, z_neg: np.ndarray, shrinkage: float = 0.5,
                           name: str = "") -> np.ndarray:
    """Fisher's discriminant direction of two groups of latents, with shrinkage.

    The mean difference ``d`` whitened by the pooled within-class covariance ``S`` shrunk
    towards its mean variance: ``w = ((1 - a) S + a (tr S / D) I)^-1 d`` with ``a`` =
    ``shrinkage`` in [0, 1], rescaled to the length of ``d`` so that scores keep the mean
    difference's scale. ``a = 1`` gives ``d`` itself; ``a = 0`` is plain linear discriminant
    analysis. Latent directions in which the groups vary a lot within themselves (other
    attributes, pose, lighting) weigh less than in ``d``. ``name``: the concept, for messages.
    """
    check_shrinkage(shrinkage)
    z_pos, z_neg = np.asarray(z_pos, dtype=np.float64), np.asarray(z_neg, dtype=np.float64)
    d = z_pos.mean(axis=0) - z_neg.mean(axis=0)
    dof = len(z_pos) + len(z_neg) - 2
    if dof < 1:
        raise ConfigError(f"concept '{name}': direction 'discriminant' needs at least 3 samples in "
                          f"all (found {len(z_pos)} with and {len(z_neg)} without the concept); "
                          f"use direction 'mean_difference'")
    centred = np.concatenate([z_pos - z_pos.mean(axis=0), z_neg - z_neg.mean(axis=0)])
    return _whitened(d, centred.T @ centred / dof, shrinkage)


def _whitened(d: np.ndarray, within: np.ndarray, shrinkage: float) -> np.ndarray:
    """``d`` whitened by the covariance ``within`` shrunk towards its mean variance, rescaled to
    the length of ``d`` (``d`` itself where there is nothing to whiten by)."""
    scale = np.trace(within) / len(d)
    if scale <= 0 or not np.any(d):
        return d
    w = np.linalg.solve((1.0 - shrinkage) * within + shrinkage * scale * np.eye(len(d)), d)
    return w * (np.linalg.norm(d) / np.linalg.norm(w))


def adjusted_direction(z: np.ndarray, positive: np.ndarray, covariates: np.ndarray,
                       direction: str = "mean_difference", shrinkage: float = 0.5, name: str = "",
                       covariate_names=()) -> np.ndarray:
    """The concept's difference with ``covariates`` held fixed.

    The coefficient ``b`` of ``positive`` in the least-squares fit of the latents ``z`` on an
    intercept, ``positive`` and the ``(N, M)`` ``covariates`` (other attributes, 0/1): the
    mean difference between samples with and without the concept that agree in the
    covariates. ``direction="discriminant"`` whitens ``b`` by the fit's residual covariance,
    shrunk and rescaled as :func:`discriminant_direction`. With no covariates these are the
    mean difference and :func:`discriminant_direction` exactly. A latent direction that
    follows a covariate (sex, age) and goes with the concept only through it drops out.
    Refused (:class:`ConfigError`, naming ``name`` and ``covariate_names``) when the concept is
    a combination of the covariates among these samples, or there are too few samples.
    """
    check_direction(direction)
    check_shrinkage(shrinkage)
    z = np.asarray(z, dtype=np.float64)
    covariates = np.asarray(covariates, dtype=np.float64).reshape(len(z), -1)
    base = np.column_stack([np.ones(len(z)), covariates])
    design = np.column_stack([base[:, :1], np.asarray(positive, dtype=np.float64), base[:, 1:]])
    rank = np.linalg.matrix_rank(design)
    held = ", ".join(covariate_names) or f"{covariates.shape[1]} covariates"
    if rank == np.linalg.matrix_rank(base):
        raise ConfigError(f"concept '{name}': among the {len(z)} samples it is fitted on, having the "
                          f"concept is fixed by the 'adjust_for' attributes ({held}), so their effect "
                          f"cannot be told apart from its own; drop them from 'concepts.adjust_for'")
    if len(z) - rank < 1:
        raise ConfigError(f"concept '{name}': too few samples ({len(z)}) to hold {held} fixed; "
                          f"remove 'concepts.adjust_for' or use more samples ('num_samples')")
    coef, *_ = np.linalg.lstsq(design, z, rcond=None)
    d = coef[1]
    if direction == "mean_difference":
        return d
    residual = z - design @ coef
    return _whitened(d, residual.T @ residual / (len(z) - rank), shrinkage)


def check_shrinkage(shrinkage: float) -> None:
    """Refuse a ``shrinkage`` outside [0, 1], in one message."""
    if not 0.0 <= shrinkage <= 1.0:
        raise ConfigError(f"concepts: 'shrinkage' must lie in [0, 1], got {shrinkage}")


def check_direction(direction: str) -> None:
    """Refuse a ``direction`` that is not one of :data:`DIRECTIONS`, in one message."""
    if direction not in DIRECTIONS:
        raise ConfigError(f"concepts: 'direction' must be one of {', '.join(DIRECTIONS)}, got {direction!r}")


def attribute_vector(z: np.ndarray, positive: np.ndarray, num_samples: int | None = None,
                     rng: np.random.Generator | None = None, name: str = "",
                     allow_fewer: bool = False, direction: str = "mean_difference",
                     shrinkage: float = 0.5, covariates: np.ndarray | None = None,
                     covariate_names=()) -> tuple[np.ndarray, dict]:
    """Mean latent of ``num_samples`` positives minus ``num_samples`` negatives (all if None);
    with ``direction="discriminant"`` that difference whitened by the same samples'
    within-class covariance (:func:`discriminant_direction`); with ``covariates`` (``(N, M)``,
    per sample) the difference with them held fixed (:func:`adjusted_direction`)."""
    check_direction(direction)
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
    if covariates is not None and np.asarray(covariates).size:
        chosen = np.concatenate([pos, neg])
        vector = adjusted_direction(z[chosen], positive[chosen], np.asarray(covariates)[chosen], direction,
                                    shrinkage, name, covariate_names)
    elif direction == "discriminant":
        vector = discriminant_direction(z[pos], z[neg], shrinkage, name)
    else:
        vector = z[pos].mean(axis=0) - z[neg].mean(axis=0)
    return vector.astype(np.float32), {"n_positive": len(pos), "n_negative": len(neg)}


def concept_from_labels(z: np.ndarray, labels, num_samples: int | None = None, seed: int = 0,
                        allow_fewer: bool = False, name: str = "concept",
                        direction: str = "mean_difference", shrinkage: float = 0.5,
                        adjust_for=None) -> np.ndarray:
    """The concept vector of a binary attribute: mean latent of the samples with it (``labels``
    true, or 1) minus the mean of those without, over ``num_samples`` of each (all if None);
    ``direction="discriminant"``: that difference whitened by the within-class covariance
    (:func:`discriminant_direction`, with ``shrinkage``); ``adjust_for``: ``(N,)`` or ``(N, M)``
    other attributes of the same samples, held fixed (:func:`adjusted_direction`).

    ``z``: ``(N, D)`` latents (e.g. :func:`concept_saliency.encoding.latents`). Refused
    (:class:`ConfigError`): no samples with or without, or fewer than ``num_samples`` unless
    ``allow_fewer``.
    """
    labels = np.asarray(labels)
    positive = labels > 0 if labels.dtype.kind in "iuf" else labels.astype(bool)
    covariates = None if adjust_for is None else np.asarray(adjust_for).reshape(len(positive), -1)
    vector, _ = attribute_vector(np.asarray(z), positive, num_samples, np.random.default_rng(seed), name,
                                 allow_fewer, direction, shrinkage, covariates)
    return vector


def concept_from_group(z: np.ndarray, members, subtract_rest: bool = False,
                       direction: str = "mean_difference", shrinkage: float = 0.5) -> np.ndarray:
    """The concept vector of a group of samples: their mean latent (minus the mean of all the
    others with ``subtract_rest``; whitened as :func:`discriminant_direction` with that and
    ``direction="discriminant"``). ``members``: a boolean mask or indices of samples."""
    members = np.asarray(members)
    if members.dtype != bool:
        mask = np.zeros(len(z), dtype=bool)
        mask[members.astype(np.int64)] = True
        members = mask
    return group_vector(np.asarray(z), members, subtract_rest, direction, shrinkage)


def group_vector(z: np.ndarray, members: np.ndarray, subtract_rest: bool = False,
                 direction: str = "mean_difference", shrinkage: float = 0.5) -> np.ndarray:
    """Mean latent of the group (minus the mean of all other samples if asked; with
    ``direction="discriminant"`` that difference whitened as :func:`discriminant_direction`)."""
    check_direction(direction)
    members = np.asarray(members, dtype=bool)
    if not members.any():
        raise ConfigError("a group concept has no members")
    if subtract_rest and (~members).any() and direction == "discriminant":
        return discriminant_direction(z[members], z[~members], shrinkage).astype(np.float32)
    vector = z[members].mean(axis=0)
    if subtract_rest and (~members).any():
        vector = vector - z[~members].mean(axis=0)
    return vector.astype(np.float32)


def contrast_with_other_groups(z: np.ndarray, members: np.ndarray, others: list[np.ndarray],
                               subtract_rest: bool = False) -> np.ndarray:
    """A group's mean latent minus the mean of the ``others`` groups' mean latents (each group
    weighted alike, whatever its size); with ``subtract_rest`` the average of that difference and
    the group's difference from all other samples. ``members``, ``others``: boolean masks.

    For region concepts: what sets a region's markers apart from the other regions' markers,
    not only from all genes (most of which no region marks), so that a layer's concept does
    not also point at what every layer-specific gene shares with the layer beside it."""
    members = np.asarray(members, dtype=bool)
    if not others:
        raise ConfigError("a contrast with other groups needs at least one other group")
    z = np.asarray(z, dtype=np.float64)
    vector = z[members].mean(axis=0) - np.mean([z[np.asarray(o, dtype=bool)].mean(axis=0) for o in others], axis=0)
    if subtract_rest and (~members).any():
        vector = 0.5 * (vector + group_vector(z, members, subtract_rest=True))
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


# ------------------------------------------------------------------ the concepts of a config


def attribute_concepts(z: np.ndarray, labels: np.ndarray, label_names: list[str], names,
                       fit_on: np.ndarray, num_samples: int | None = None,
                       allow_fewer: bool = False, seed: int = 0, where: str = "",
                       direction: str = "mean_difference", shrinkage: float = 0.5,
                       adjust_for=()) -> list[Concept]:
    """One concept per attribute in ``names`` (``"all"``: every label), its vector fitted on the
    samples ``fit_on`` (the training split) in the ``direction`` of :func:`attribute_vector`,
    with the attributes ``adjust_for`` held fixed (except the concept's own).
    Unknown attributes are refused naming ``where``."""
    unknown = [a for a in adjust_for if a not in label_names]
    if unknown:
        raise ConfigError(f"concepts.adjust_for: no attribute {', '.join(map(repr, unknown))} in {where}; "
                          f"name attributes of its labels (e.g. {', '.join(list(label_names)[:3])})")
    rng = np.random.default_rng(seed)
    out = []
    for name in (label_names if names == "all" else names):
        if name not in label_names:
            raise ConfigError(f"concept '{name}': no such attribute in {where}")
        positive = labels[:, label_names.index(name)]
        held = [a for a in dict.fromkeys(adjust_for) if a != name]
        covariates = labels[:, [label_names.index(a) for a in held]][fit_on] if held else None
        vec, info = attribute_vector(z[fit_on], positive[fit_on], num_samples, rng, name, allow_fewer,
                                     direction, shrinkage, covariates, held)
        out.append(Concept(name, "attribute", vec, positive, info))
    return out


GROUP_COLUMNS = ["concept", "kind", "rank", "gene", "r", "p", "marker_score", "logfoldchange", "p_adj"]


def gene_concepts(spec: dict, z: np.ndarray, genes: GeneIndex, adata=None,
                  filter_note: str = "") -> tuple[list[Concept], list[dict]]:
    """Seed-gene, gene-set and region concepts of a concept ``spec`` (the config's ``concepts``),
    and one row per member gene for ``groups.tsv`` (columns :data:`GROUP_COLUMNS`).

    ``adata``: the prepared AnnData, for region concepts (its spot annotation).
    ``filter_note``: what the normalisation removed, for messages. Refused
    (:class:`ConfigError`, naming the concept and the key): ``n_genes`` not below the number of
    genes (a concept of every gene leaves none to separate it from: its AUROC is undefined),
    a gene set naming one gene twice or holding every gene, a region whose markers are every
    gene, ``subtract_regions`` with no other region concept of the same annotation column or
    with ``direction: discriminant``. A region with fewer genes higher inside than
    ``n_markers`` becomes a concept of those genes, with a warning; ``details["n_genes"]`` says
    how many.
    """
    nan = float("nan")
    concepts: list[Concept] = []
    rows: list[dict] = []
    direction = (spec.get("direction", "mean_difference"), float(spec.get("shrinkage", 0.5)))

    def row(name, kind, rank, gene, r=nan, p=nan, score=nan, lfc=nan, p_adj=nan):
        return {"concept": name, "kind": kind, "rank": rank, "gene": gene, "r": r, "p": p,
                "marker_score": score, "logfoldchange": lfc, "p_adj": p_adj}

    def membership(idx, name, key):
        members = np.zeros(len(z), dtype=bool)
        members[idx] = True
        if members.all():
            raise ConfigError(f"concept '{name}' ({key}) holds all {len(z)} genes of the data"
                              f"{filter_note}: no gene is left to separate it from (its AUROC "
                              f"is undefined); leave some genes out")
        return members

    for name, item in (spec.get("seed_genes") or {}).items():
        item = item if isinstance(item, dict) else {"gene": item}
        key = f"concepts.seed_genes.{name}.n_genes" if "n_genes" in item else "concepts.n_genes"
        n_genes = int(item.get("n_genes", spec.get("n_genes", 50)))
        seed_idx = genes.find_one(item["gene"], f"concept '{name}'")
        if n_genes >= len(genes):
            raise ConfigError(f"concept '{name}': config key '{key}' is {n_genes}, but the data have "
                              f"{len(genes)} genes{filter_note}; a concept needs genes outside it "
                              f"(its AUROC is undefined otherwise): set it below {len(genes)}")
        idx, r, p = correlated_with(z, seed_idx, n_genes)
        members = membership(idx, name, key)
        concepts.append(Concept(name, "seed_gene", group_vector(z, members), members,
                                {"seed": genes.genes[seed_idx], "n_genes": n_genes,
                                 "seed_index": seed_idx}))
        rows += [row(name, "seed_gene", k + 1, genes.genes[i], float(rr), float(pp))
                 for k, (i, rr, pp) in enumerate(zip(idx, r, p))]
    for name, item in (spec.get("gene_sets") or {}).items():
        item = item if isinstance(item, dict) else {"genes": item}
        idx = genes.find(item["genes"], f"concept '{name}'")
        members = membership(idx, name, f"concepts.gene_sets.{name}")
        subtract = bool(item.get("subtract_rest", spec.get("subtract_rest", False)))
        concepts.append(Concept(name, "gene_set", group_vector(z, members, subtract, *direction), members,
                                {"genes": [genes.genes[i] for i in idx], "subtract_rest": subtract,
                                 "n_genes": len(idx)}))
        rows += [row(name, "gene_set", k + 1, genes.genes[i]) for k, i in enumerate(idx)]
    regions = spec.get("regions") or {}
    if regions and adata is None:
        raise ConfigError("region concepts need spatial data with a spot annotation")
    region_concepts: list[Concept] = []
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
        against_regions = bool(item.get("subtract_regions", spec.get("subtract_regions", False)))
        region_concepts.append(Concept(name, "region", group_vector(z, members, subtract, *direction),
                                       members, {"region": str(item["region"]), "key": key, "n_markers": n,
                                                 "n_genes": len(idx), "subtract_rest": subtract,
                                                 "subtract_regions": against_regions}))
        rows += [row(name, "region", k + 1, genes.genes[i], p=t.p, score=t.score,
                     lfc=t.logfoldchange, p_adj=t.p_adj)
                 for k, (i, t) in enumerate(zip(idx, table.itertuples()))]
    for concept in region_concepts:
        if concept.details["subtract_regions"]:
            concept.vector = _against_other_regions(z, concept, region_concepts, direction[0])
    return concepts + region_concepts, rows


def _against_other_regions(z: np.ndarray, concept: Concept, regions: list[Concept], direction: str) -> np.ndarray:
    """A region concept's vector with ``subtract_regions``: contrasted with the other region
    concepts of the same annotation column (:func:`contrast_with_other_groups`)."""
    name, key = concept.name, concept.details["key"]
    if direction != "mean_difference":
        raise ConfigError(f"concept '{name}': 'subtract_regions' takes the mean difference; set "
                          f"'concepts.direction' to mean_difference or remove 'subtract_regions'")
    others = [c.positives for c in regions if c is not concept and c.details["key"] == key]
    if not others:
        raise ConfigError(f"concept '{name}': 'subtract_regions' needs another region concept of the "
                          f"annotation '{key}' to contrast with; add one or remove 'subtract_regions'")
    return contrast_with_other_groups(z, concept.positives, others, concept.details["subtract_rest"])


def held_out_samples(split: np.ndarray) -> np.ndarray:
    """The samples held out from fitting (the validation split; every sample when none is)."""
    from .data.samples import VALIDATION

    held_out = np.asarray(split) == VALIDATION
    return held_out if held_out.any() else np.ones(len(held_out), dtype=bool)


def evaluated_on(kind: str, held_out: np.ndarray) -> np.ndarray:
    """The samples the separation of a concept of ``kind`` is measured on: the held-out samples
    for an attribute (its vector was fitted on the others), every sample for a group (its
    members define it)."""
    return held_out if kind == "attribute" else np.ones(len(held_out), dtype=bool)


def separation(concepts: list[Concept], scores: np.ndarray, held_out: np.ndarray) -> list[dict]:
    """One row per concept for ``separation.tsv``: AUROC of its scores for positives against the
    rest (on :func:`evaluated_on`'s samples), counts, mean scores, the fit's sample counts."""
    rows = []
    for k, c in enumerate(concepts):
        held = evaluated_on(c.kind, held_out)
        pos, neg = c.positives & held, held & ~c.positives
        rows.append({"concept": c.name, "kind": c.kind, "auroc": auroc(scores[held, k], c.positives[held]),
                     "evaluated_on": "held-out" if c.kind == "attribute" else "all",
                     "n_positive": int(pos.sum()), "n_negative": int(neg.sum()),
                     "mean_score_positive": float(scores[pos, k].mean()) if pos.any() else float("nan"),
                     "mean_score_negative": float(scores[neg, k].mean()) if neg.any() else float("nan"),
                     **{f"fit_{key}": v for key, v in c.details.items() if key.startswith("n_")}})
    return rows


def samples_to_explain(concepts: list[Concept], scores: np.ndarray, held_out: np.ndarray,
                       top_k: int, extra: np.ndarray) -> dict[str, np.ndarray]:
    """Per concept, the samples whose maps are drawn: a seed gene first, then the ``top_k``
    highest-scoring positives (held-out ones where there are any), then the ``extra`` ids."""
    selection = {}
    for k, c in enumerate(concepts):
        pos = c.positives & evaluated_on(c.kind, held_out)
        candidates = (pos if pos.any() else c.positives).copy()
        first = np.asarray([c.details["seed_index"]] if "seed_index" in c.details else [], np.int64)
        candidates[first] = False  # a seed gene is always explained, first
        chosen = np.concatenate([first, select_top(scores[:, k], candidates, top_k - len(first))])
        selection[c.name] = np.concatenate([chosen, extra[~np.isin(extra, chosen)]]).astype(np.int64)
    return selection


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
