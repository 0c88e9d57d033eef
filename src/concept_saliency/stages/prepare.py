"""Stages that turn inputs into the sample store."""

from __future__ import annotations

import logging

from ..artifacts import Provenance

log = logging.getLogger("concept_saliency")


def prepare_images(*, labels: str, samples: str, image_size: int, validation_fraction: float, seed: int,
                   background="white", images: str | None = None, manifest: str | None = None) -> None:
    """A folder of images and its attribute table -> the sample store, every attribute column packed.

    Give the folder as ``images`` (the synthetic shapes, made by an earlier rule) or as ``manifest``,
    the listing of a user's folder written when the DAG is built (:mod:`..data.manifest`; it names
    the folder, and its change reruns this stage). Transparent pixels become ``background``.
    """
    from ..data.images import pack_image_folder
    from ..data.manifest import manifest_folder

    if (images is None) == (manifest is None):
        raise TypeError("give the images folder or its manifest, exactly one")
    folder = images if images is not None else manifest_folder(manifest)
    params = dict(image_size=image_size, validation_fraction=validation_fraction, seed=seed,
                  background=background)
    inputs = {"images": folder, "labels": labels, **({"manifest": manifest} if manifest else {})}
    prov = Provenance("prepare_images", params, inputs)
    summary = pack_image_folder(folder, labels, samples, image_size, validation_fraction, seed, background)
    prov.extra["summary"] = summary
    prov.write(samples, "csm.samples")
    log.info("packed %d images of %dx%d", summary["images"], image_size, image_size)


def prepare_spatial(*, samples: str, anndata: str, grid: str, normalisation: dict,
                    grid_size, validation_fraction: float, seed: int, counts: str | None = None,
                    annotation: str | None = None, transformation: str | None = None,
                    image: str | None = None, h5ad: str | None = None, options: dict | None = None,
                    library_id: str = "section", presets=(), multiple: int | None = None,
                    max_grid: int | None = None) -> None:
    """Spatial data -> AnnData (``.h5ad``) and genes as images on the spot grid (sample store).

    Input: an ST count matrix (``counts``; optional alignment matrix ``transformation``,
    H&E ``image`` and spot ``annotation`` TSV), or a user's ``h5ad`` with ``options``
    ``counts_layer``, ``region_key``, ``library_id``. ``normalisation``: ``method``,
    ``min_spots``, ``min_counts`` and ``duplicate_genes`` (``refuse`` or ``sum`` a gene name
    given twice). The grid is padded to a multiple of every model preset's downsampling
    (``presets``), or of ``multiple``, and may be at most ``max_grid`` pixels across.
    """
    from ..data import spatial
    from ..data.samples import assign_split, write_samples

    options = dict(options or {})
    if multiple is None:
        from ..model import get_preset

        multiple = max([8, *(get_preset(p).downsampling for p in presets)])
    max_grid = spatial.MAX_GRID if max_grid is None else int(max_grid)
    duplicate_genes = normalisation.get("duplicate_genes", "refuse")
    params = dict(normalisation=normalisation, grid_size=grid_size, options=options,
                  validation_fraction=validation_fraction, seed=seed, multiple=multiple,
                  library_id=library_id, max_grid=max_grid)
    inputs = {k: v for k, v in dict(counts=counts, annotation=annotation, transformation=transformation,
                                    image=image, h5ad=h5ad).items() if v}
    prov = Provenance("prepare_spatial", params, inputs)
    if h5ad:
        adata = spatial.read_user_anndata(h5ad, options.get("counts_layer"), options.get("region_key"),
                                          options.get("library_id"), duplicate_genes)
    else:
        raw = spatial.read_st_counts(counts, duplicate_genes)
        matrix = spatial.read_transformation(transformation) if transformation else None
        picture = spatial.read_image(image) if image else None
        adata = spatial.counts_to_anndata(raw, library_id, matrix, picture)
        log.info("read %d spots x %d genes from %s", *raw.shape, counts)
    if annotation:
        adata.obs["region"] = spatial.read_spot_annotation(annotation, list(adata.obs_names))
        adata.uns["csm_region_key"] = "region"
    adata, removed = spatial.normalise(adata, normalisation.get("method", "scale"),
                                       int(normalisation.get("min_spots", 1)),
                                       int(normalisation.get("min_counts", 1)),
                                       source=str(h5ad or counts))
    key = adata.uns.get("csm_region_key")
    regions = spatial.region_labels(adata.obs[key]) if key else None
    index = spatial.grid_index(adata, grid_size, multiple, max_grid=max_grid, source=str(h5ad or counts))
    images = spatial.genes_to_images(adata, index)
    spatial.write_anndata(adata, anndata)
    spatial.write_grid(grid, index, regions)
    write_samples(samples, images, list(adata.var_names),
                  assign_split(adata.n_vars, validation_fraction, seed),
                  attrs={"source": str(h5ad or counts), "kind": "spatial-genes"})
    merged = adata.uns.get("csm_merged_genes")
    prov.extra["summary"] = removed | {"grid": list(index.shape)} | (
        {"merged_genes": dict(zip(map(str, merged["gene"]), map(str, merged["from"])))} if merged else {})
    for path, fmt in ((anndata, "csm.anndata"), (grid, "csm.spatial-grid"), (samples, "csm.samples")):
        prov.write(path, fmt)
    log.info("%d genes as %dx%d images on the spot grid", adata.n_vars, *index.shape)
