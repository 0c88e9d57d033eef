"""The generate_tissue stage: the built-in demo's synthetic layered tissue."""

from __future__ import annotations

import logging

from ..data.synthetic import make_layered_tissue, write_tissue

log = logging.getLogger("concept_saliency")


def generate_tissue(*, counts: str, annotation: str, n_layers: int, genes_per_layer: int,
                    n_housekeeping: int, n_noise: int, grid: list[int], depth: float,
                    fold_change: float, seed: int) -> None:
    """An ST count matrix (``counts``, spots x genes) and the layer of every spot (``annotation``)."""
    data = make_layered_tissue(n_layers, genes_per_layer, n_housekeeping, n_noise, tuple(grid),
                               depth, fold_change, seed)
    write_tissue(data, counts, annotation)
    log.info("wrote a tissue of %d spots x %d genes in %d layers", *data.counts.shape, n_layers)
