"""The prepare_spatial stage: spatial data -> AnnData, and genes as images on the spot grid."""

from __future__ import annotations

import logging

from ..data import spatial, spot_annotation, st_counts, visium
from ..data.grid import MAX_GRID, genes_to_images, grid_extent, grid_index, write_grid
from ..data.samples import assign_split, write_samples
from ..errors import InputDataError
from ..presets import get_preset

log = logging.getLogger("concept_saliency")


def prepare_spatial(*, samples: str, anndata: str, grid: str, normalisation: dict,
                    grid_size, validation_fraction: float, seed: int, counts: str | None = None,
                    annotation: str | None = None, transformation: str | None = None,
                    image: str | None = None, h5ad: str | None = None, matrix: str | None = None,
                    positions: str | None = None, scalefactors: str | None = None,
                    hires_image: str | None = None, lowres_image: str | None = None,
                    options: dict | None = None, library_id: str = "section", presets=(),
                    multiple: int | None = None, max_grid: int | None = None,
                    grid_from: str | None = None) -> dict:
    """Write the normalised AnnData (``anndata``), the spot grid (``grid``) and every gene as an
    image on it (``samples``, the sample store).

    Input: an ST count matrix (``counts``; optional alignment matrix ``transformation``,
    H&E ``image`` and spot ``annotation`` TSV), a user's ``h5ad`` with ``options``
    ``counts_layer``, ``region_key``, ``library_id``, or Space Ranger's files (``matrix``,
    ``positions``, ``scalefactors``, optional ``hires_image``, ``lowres_image`` and
    ``annotation`` CSV/TSV) with ``options`` ``in_tissue_only``, ``library_id``
    (:mod:`..data.visium`). ``library_id`` names the library when neither the options nor
    the input do. ``normalisation``: ``method``, ``min_spots``, ``min_counts`` and
    ``duplicate_genes`` (``refuse`` or ``sum`` a gene name given twice; default ``sum`` for
    Space Ranger's files, ``refuse`` otherwise). The grid is ``grid_size`` pixels across
    (``auto``: the smallest power of two that holds the array), a multiple of every model
    preset's downsampling (``presets``) or of ``multiple``, at most ``max_grid``;
    ``grid_from`` names the config key of the encoder whose input size it is, if any.
    Returns what the normalisation removed and the grid's shape.
    """
    options = dict(options or {})
    if multiple is None:
        # the presets' strides; a user's own encoder (no preset) takes the size it was given
        multiple = max([8, *(get_preset(p).downsampling for p in presets)]) \
            if presets or grid_size == "auto" else 1
    max_grid = MAX_GRID if max_grid is None else int(max_grid)
    duplicate_genes = normalisation.get("duplicate_genes") or ("sum" if matrix else "refuse")
    source = str(h5ad or matrix or counts)
    if h5ad:
        adata = spatial.read_user_anndata(h5ad, options.get("counts_layer"), options.get("region_key"),
                                          options.get("library_id"), duplicate_genes)
    elif matrix:
        adata = visium.read_visium(matrix, positions, scalefactors, hires_image, lowres_image,
                                   library_id=options.get("library_id"), default_library_id=library_id,
                                   in_tissue_only=options.get("in_tissue_only", True),
                                   duplicate_genes=duplicate_genes)
    else:
        raw = st_counts.read_st_counts(counts, duplicate_genes)
        alignment = st_counts.read_transformation(transformation) if transformation else None
        picture = st_counts.read_image(image) if image else None
        adata = spatial.counts_to_anndata(raw, library_id, alignment, picture)
        log.info("read %d spots x %d genes from %s", *raw.shape, counts)
    if annotation:
        adata.obs["region"] = spot_annotation.read_spot_annotation(annotation, list(adata.obs_names))
        adata.uns["csm_region_key"] = "region"
    adata, removed = spatial.normalise(adata, normalisation.get("method", "scale"),
                                       int(normalisation.get("min_spots", 1)),
                                       int(normalisation.get("min_counts", 1)),
                                       source=source)
    key = adata.uns.get("csm_region_key")
    regions = spatial.region_labels(adata.obs[key]) if key else None
    if grid_from and grid_size != "auto" and grid_extent(adata) > int(grid_size):
        raise InputDataError(f"{source}: the spot array is {grid_extent(adata)} positions across, more than "
                             f"the {grid_size}x{grid_size} gene images the encoder '{grid_from}' takes; give "
                             f"an encoder for images of at least {grid_extent(adata)} pixels across")
    index = grid_index(adata, grid_size, multiple, max_grid=max_grid, source=source)
    images = genes_to_images(adata, index)
    spatial.write_anndata(adata, anndata)
    write_grid(grid, index, regions)
    write_samples(samples, images, list(adata.var_names),
                  assign_split(adata.n_vars, validation_fraction, seed),
                  attrs={"source": source, "kind": "spatial-genes"})
    log.info("%d genes as %dx%d images on the spot grid", adata.n_vars, *index.shape)
    merged = adata.uns.get("csm_merged_genes")
    return {"summary": removed | {"grid": list(index.shape), "multiple": multiple} | (
        {"merged_genes": dict(zip(map(str, merged["gene"]), map(str, merged["from"])))} if merged else {})}
