"""Do the concept maps land on their layers? AUROC of every spot map against every annotated layer.

Given the workflow's ``results/<dataset>/<model>/maps.h5ad``, a model with seeds'
``<model>/stability/consensus_maps.h5ad`` (the seeds' maps averaged; no ``expr`` row, each
seed explains its own genes) or any AnnData with spot maps in ``obs["csm_<concept>_<method>"]``
listed like theirs, and a spot annotation, it prints, per map variant and
method, a concept x layer table of AUROC: the per-spot map values of the spots in the layer
against the annotated spots outside it (0.5: no better than chance; ties count half). Three
variants of a map ``m``: ``signed`` (m), ``positive`` (max(m, 0)) and ``absolute`` (|m|).

A concept's own layer comes from ``--expect concept=LAYER`` (repeatable); without it, a
concept named as ``regions: all`` names a layer's concept (``2_mitral_cell_layer`` for
``2: Mitral Cell Layer``), or whose name is a layer's name (any case) or ends in ``_<layer>``,
expects that layer, and the seed genes of ``config/mob.yaml`` expect theirs (penk GCL, doc2g
MCL, kctd12 ONL; with other layer names give ``--expect doc2g=<layer>``).
The own-layer cell is marked ``*`` when it is the concept's highest AUROC among the layers
(the map ranks its own layer first). ``expr`` is the mean normalised expression (``X``) of the
concept's explained genes, the same genes the maps average: how far the genes themselves
separate the layers.

    PYTHONPATH=src python benchmarks/mob_layers.py results/mob/paper/maps.h5ad \\
        --annotation tests/data/mob_rep11_layers.tsv [--variant signed] [--tsv out.tsv]

The annotation is a TSV (spot, region; a header line is optional), matched as the workflow
matches it, or ``--key`` an obs column of the AnnData. Layers with fewer than ``--min-spots``
spots are left out of the tables.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd

SEED_LAYERS = {"penk": "GCL", "doc2g": "MCL", "kctd12": "ONL", "mitral_markers": "MCL"}
VARIANTS = {
    "signed": lambda m: m,
    "positive": lambda m: np.maximum(m, 0.0),
    "absolute": np.abs,
}
MAP_PREFIX = "csm_"


def auroc(values: np.ndarray, positive: np.ndarray) -> float:
    """Mann-Whitney AUROC with midranks; NaN when one side is empty."""
    from scipy.stats import rankdata

    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(values)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def read_layers(adata, annotation: str | None, key: str | None) -> pd.Series:
    """The layer of every spot ('' where unannotated), from a TSV or an obs column."""
    if annotation:
        from concept_saliency.data.spot_annotation import read_spot_annotation

        labels = read_spot_annotation(annotation, list(adata.obs_names))
    else:
        key = key or adata.uns.get("csm_region_key") or "region"
        from concept_saliency.data.spatial import region_labels

        labels = region_labels(adata.obs[key])
    return pd.Series(labels, index=adata.obs_names, dtype=str)


def concepts_and_methods(adata) -> tuple[list[str], list[str]]:
    """The concepts and methods of a ``maps.h5ad`` (``uns["csm_concepts"]``) or of the consensus
    stage's ``consensus_maps.h5ad`` (``uns["csm_consensus"]``)."""
    info = adata.uns.get("csm_concepts", {})
    if not info and "csm_consensus" in adata.uns:
        averaged = adata.uns["csm_consensus"]
        return ([str(c) for c in np.atleast_1d(averaged["concepts"])],
                [str(m) for m in np.atleast_1d(averaged["methods"])])
    concepts = list(info)
    methods = sorted({m for c in info.values() for m in np.atleast_1d(c.get("methods", []))})
    return concepts, methods


def has_explained_genes(adata) -> bool:
    """Whether the file lists each concept's explained genes (``maps.h5ad`` does; the seeds'
    average does not: each seed explains its own genes)."""
    return bool(adata.uns.get("csm_concepts"))


def expected_layer(concept: str, layers: list[str], expect: dict[str, str]) -> str | None:
    if concept in expect:
        return expect[concept]
    from concept_saliency.config import region_concept_names

    named = region_concept_names(sorted(layers))  # the concepts of 'regions: all'
    if concept in named:
        return named[concept]
    for layer in layers:
        if concept.lower() == layer.lower() or concept.lower().endswith("_" + layer.lower()):
            return layer
    guess = SEED_LAYERS.get(concept.lower())
    return guess if guess in layers else None


def expression_map(adata, concept: str) -> np.ndarray:
    """Mean normalised expression of the concept's explained genes on the spots."""
    genes = [str(g) for g in np.atleast_1d(adata.uns["csm_concepts"][concept]["explained"])]
    x = adata[:, genes].X
    return np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=np.float64).mean(axis=1)


def layer_table(adata, labels: pd.Series, min_spots: int = 30, expect: dict | None = None,
                methods: list[str] | None = None, with_expression: bool = True) -> pd.DataFrame:
    """Long table: concept, method, variant, layer, auroc, n_spots, own (the concept's layer),
    first (its own layer has the highest AUROC of the concept's row)."""
    expect = expect or {}
    counts = labels[labels != ""].value_counts()
    layers = [layer for layer in counts.index if counts[layer] >= min_spots]
    annotated = (labels != "").to_numpy()
    concepts, found = concepts_and_methods(adata)
    methods = methods or found
    rows = []
    for concept in concepts:
        own = expected_layer(concept, layers, expect)
        maps = {m: adata.obs[f"{MAP_PREFIX}{concept}_{m}"].to_numpy(np.float64) for m in methods
                if f"{MAP_PREFIX}{concept}_{m}" in adata.obs}
        if with_expression and has_explained_genes(adata):
            maps["expr"] = expression_map(adata, concept)
        for method, values in maps.items():
            for variant, transform in VARIANTS.items():
                if method == "expr" and variant != "signed":
                    continue
                v = transform(values)[annotated]
                scores = {layer: auroc(v, (labels[annotated] == layer).to_numpy()) for layer in layers}
                best = max(scores, key=lambda k: scores[k])
                for layer, score in scores.items():
                    rows.append({"concept": concept, "method": method, "variant": variant, "layer": layer,
                                 "auroc": score, "n_spots": int(counts[layer]), "own": layer == own,
                                 "first": own is not None and best == own})
    return pd.DataFrame(rows)


def format_tables(table: pd.DataFrame, variants=("signed",)) -> str:
    """One concept x layer table per (variant, method), own-layer cells marked (``*`` first)."""
    out = []
    layers = list(dict.fromkeys(table["layer"]))
    for variant in variants:
        sub = table[table["variant"] == variant]
        for method in dict.fromkeys(sub["method"]):
            t = sub[sub["method"] == method]
            out.append(f"\n{method} ({variant})")
            out.append(f"{'concept':<16}" + "".join(f"{layer:>9}" for layer in layers))
            for concept in dict.fromkeys(t["concept"]):
                cells = []
                for layer in layers:
                    r = t[(t["concept"] == concept) & (t["layer"] == layer)].iloc[0]
                    mark = ("*" if r["first"] else "<") if r["own"] else " "
                    cells.append(f"{r['auroc']:8.3f}{mark}")
                out.append(f"{concept:<16}" + "".join(cells))
    return "\n".join(out)


def own_layer_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per concept x method x variant: own layer, its AUROC and whether it is ranked first."""
    own = table[table["own"]]
    return own[["concept", "method", "variant", "layer", "auroc", "first"]].reset_index(drop=True)


def parse_expect(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items or []:
        concept, _, layer = item.partition("=")
        if not layer:
            raise SystemExit(f"--expect {item!r}: write concept=LAYER")
        out[concept] = layer
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("maps", help="maps.h5ad of the workflow's spatial_maps stage")
    parser.add_argument("--annotation", help="TSV: spot, region")
    parser.add_argument("--key", help="obs column with the annotation (instead of --annotation)")
    parser.add_argument("--expect", action="append", default=[], metavar="CONCEPT=LAYER")
    parser.add_argument("--variant", action="append", choices=list(VARIANTS),
                        help="variants to print (default: signed); all are in --tsv")
    parser.add_argument("--method", action="append", help="methods to score (default: all in the file)")
    parser.add_argument("--min-spots", type=int, default=30)
    parser.add_argument("--tsv", help="write the long table here")
    args = parser.parse_args(argv)

    import anndata as ad

    adata = ad.read_h5ad(args.maps)
    labels = read_layers(adata, args.annotation, args.key)
    table = layer_table(adata, labels, args.min_spots, parse_expect(args.expect), args.method)
    if table.empty:
        raise SystemExit(f"{args.maps}: no concept maps (obs 'csm_<concept>_<method>' listed in uns "
                         f"'csm_concepts' or 'csm_consensus'); give a maps.h5ad or consensus_maps.h5ad")
    sizes = labels[labels != ""].value_counts()
    print("layers: " + ", ".join(f"{k} {v}" for k, v in sizes.items()))
    print("AUROC of each map against each layer (rows: concepts); own layer marked * when ranked "
          "first, < when not")
    print(format_tables(table, args.variant or ["signed"]))
    if args.tsv:
        table.to_csv(args.tsv, sep="\t", index=False, float_format="%.4f")
        print(f"\nwrote {args.tsv}", file=sys.stderr)


if __name__ == "__main__":
    main()
