"""Stages that make the built-in demo data."""

from __future__ import annotations

import logging


from ..artifacts import Provenance

log = logging.getLogger("concept_saliency")


def generate_shapes(*, images: str, attributes: str, masks: str, n_samples: int, image_size: int,
                    noise: float, prevalence: float, seed: int) -> None:
    """The synthetic shapes demo: PNG folder, attribute table, ground-truth masks."""
    from ..data.synthetic import make_shapes, write_shapes

    params = dict(n_samples=n_samples, image_size=image_size, noise=noise, prevalence=prevalence,
                  seed=seed)
    prov = Provenance("generate_shapes", params)
    data = make_shapes(n_samples, image_size, noise, prevalence, seed)
    write_shapes(data, images, attributes, masks)
    prov.write(images, "csm.samples")
    prov.write(attributes, "csm.table")
    prov.write(masks, "csm.masks")
    log.info("wrote %d synthetic images with attributes %s", n_samples, ", ".join(data.names))


def generate_tissue(*, counts: str, annotation: str, n_layers: int, genes_per_layer: int,
                    n_housekeeping: int, n_noise: int, grid: list[int], depth: float,
                    fold_change: float, seed: int) -> None:
    """The synthetic layered tissue: ST count matrix and the layer of every spot."""
    from ..data.synthetic import make_layered_tissue, write_tissue

    params = dict(n_layers=n_layers, genes_per_layer=genes_per_layer, n_housekeeping=n_housekeeping,
                  n_noise=n_noise, grid=grid, depth=depth, fold_change=fold_change, seed=seed)
    prov = Provenance("generate_tissue", params)
    data = make_layered_tissue(n_layers, genes_per_layer, n_housekeeping, n_noise, tuple(grid),
                               depth, fold_change, seed)
    write_tissue(data, counts, annotation)
    prov.write(counts, "csm.table")
    prov.write(annotation, "csm.table")
    log.info("wrote a tissue of %d spots x %d genes in %d layers", *data.counts.shape, n_layers)
