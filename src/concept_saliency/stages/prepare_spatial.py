"""The prepare_spatial stage: spatial data -> AnnData, and genes as images on the spot grid."""

from __future__ import annotations

import logging

from ..data import spatial, st_counts
from ..data.grid import MAX_GRID, genes_to_images, grid_index, write_grid
from ..data.samples import assign_split, write_samples
from ..presets import get_preset

log = logging.getLogger("concept_saliency")


def prepare_spatial(*, samples: str, anndata: str, grid: str, normalisation: dict,
                    grid_size, validation_fraction: float, seed: int, counts: str | None = None,
                    annotation: str | None = None, transformation: str | None = None,
                    image: str | None = None, h5ad: str | None = None, options: dict | None = None,
                    library_id: str = "section", presets=(), multiple: int | None = None,
                    max_grid: int | None = None) -> dict:
    """Write the normalised AnnData (``anndata``), the spot grid (``grid``) and every gene as an
    image on it (``samples``, the sample store).

    Input: an ST count matrix (``counts``; optional alignment matrix ``transformation``,
    H&E ``image`` and spot ``annotation`` TSV), or a user's ``h5ad`` with ``options``
    ``counts_layer``, ``region_key``, ``library_id``. ``normalisation``: ``method``,
    ``min_spots``, ``min_counts`` and ``duplicate_genes`` (``refuse`` or ``sum`` a gene name
    given twice). The grid is padded to a multiple of every model preset's downsampling
    (``presets``), or of ``multiple``, and may be at most ``max_grid`` pixels across.
    Returns what the normalisation removed and the grid's shape.
    """
    options = dict(options or {})
    if multiple is None:
        multiple = max([8, *(get_preset(p).downsampling for p in presets)])
    max_grid = MAX_GRID if max_grid is None else int(max_grid)
    duplicate_genes = normalisation.get("duplicate_genes", "refuse")
    if h5ad:
        adata = spatial.read_user_anndata(h5ad, options.get("counts_layer"), options.get("region_key"),
                                          options.get("library_id"), duplicate_genes)
    else:
        raw = st_counts.read_st_counts(counts, duplicate_genes)
        matrix = st_counts.read_transformation(transformation) if transformation else None
        picture = st_counts.read_image(image) if image else None
        adata = spatial.counts_to_anndata(raw, library_id, matrix, picture)
        log.info("read %d spots x %d genes from %s", *raw.shape, counts)
    if annotation:
        adata.obs["region"] = st_counts.read_spot_annotation(annotation, list(adata.obs_names))
        adata.uns["csm_region_key"] = "region"
    adata, removed = spatial.normalise(adata, normalisation.get("method", "scale"),
                                       int(normalisation.get("min_spots", 1)),
                                       int(normalisation.get("min_counts", 1)),
                                       source=str(h5ad or counts))
    key = adata.uns.get("csm_region_key")
    regions = spatial.region_labels(adata.obs[key]) if key else None
    index = grid_index(adata, grid_size, multiple, max_grid=max_grid, source=str(h5ad or counts))
    images = genes_to_images(adata, index)
    spatial.write_anndata(adata, anndata)
    write_grid(grid, index, regions)
    write_samples(samples, images, list(adata.var_names),
                  assign_split(adata.n_vars, validation_fraction, seed),
                  attrs={"source": str(h5ad or counts), "kind": "spatial-genes"})
    log.info("%d genes as %dx%d images on the spot grid", adata.n_vars, *index.shape)
    merged = adata.uns.get("csm_merged_genes")
    return {"summary": removed | {"grid": list(index.shape), "multiple": multiple} | (
        {"merged_genes": dict(zip(map(str, merged["gene"]), map(str, merged["from"])))} if merged else {})}
