"""Stages that turn inputs into the sample store."""

from __future__ import annotations

import logging


from ..artifacts import Provenance

log = logging.getLogger("concept_saliency")


def prepare_images(*, images: str, labels: str, samples: str, image_size: int,
                   validation_fraction: float, seed: int, attributes=None) -> None:
    from ..data.images import pack_image_folder

    params = dict(image_size=image_size, validation_fraction=validation_fraction, seed=seed,
                  attributes=attributes)
    prov = Provenance("prepare_images", params, {"images": images, "labels": labels})
    summary = pack_image_folder(images, labels, samples, image_size, validation_fraction, seed,
                                None if attributes in (None, "all") else attributes)
    prov.extra["summary"] = summary
    prov.write(samples, "csm.samples")
    log.info("packed %d images of %dx%d", summary["images"], image_size, image_size)


def prepare_spatial(*, counts: str, samples: str, anndata: str, grid: str, normalisation: dict,
                    grid_size, validation_fraction: float, seed: int, annotation: str | None = None,
                    multiple: int = 8) -> None:
    """ST counts -> AnnData (``.h5ad``) and genes as images on the spot grid (sample store)."""
    from ..data import spatial
    from ..data.samples import assign_split, write_samples

    params = dict(normalisation=normalisation, grid_size=grid_size,
                  validation_fraction=validation_fraction, seed=seed, multiple=multiple)
    inputs = {"counts": counts} | ({"annotation": annotation} if annotation else {})
    prov = Provenance("prepare_spatial", params, inputs)
    raw = spatial.read_st_counts(counts)
    adata = spatial.counts_to_anndata(raw)
    adata, removed = spatial.normalise(adata, normalisation.get("method", "scale"),
                                       int(normalisation.get("min_spots", 1)),
                                       int(normalisation.get("min_counts", 1)))
    regions = None
    if annotation:
        regions = spatial.read_spot_annotation(annotation, list(adata.obs_names))
        adata.obs["region"] = regions
    index = spatial.grid_index(adata, grid_size, multiple)
    images = spatial.genes_to_images(adata, index)
    spatial.write_anndata(adata, anndata)
    spatial.write_grid(grid, index, regions)
    write_samples(samples, images, list(adata.var_names),
                  assign_split(adata.n_vars, validation_fraction, seed),
                  attrs={"source": str(counts), "kind": "spatial-genes"})
    prov.extra["summary"] = removed | {"grid": list(index.shape)}
    for path, fmt in ((anndata, "csm.anndata"), (grid, "csm.spatial-grid"), (samples, "csm.samples")):
        prov.write(path, fmt)
