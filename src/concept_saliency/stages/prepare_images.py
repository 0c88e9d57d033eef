"""The prepare_images stage: a folder of images and its attribute table -> the sample store."""

from __future__ import annotations

import logging

from ..data.images import pack_image_folder
from ..data.manifest import manifest_folder

log = logging.getLogger("concept_saliency")


def prepare_images(*, labels: str, samples: str, image_size: int, validation_fraction: float, seed: int,
                   background="white", images: str | None = None, manifest: str | None = None) -> dict:
    """Pack every image the attribute table names, with every attribute column.

    Give the folder as ``images`` (the synthetic shapes, made by an earlier rule) or as
    ``manifest``, the listing of a user's folder written when the DAG is built
    (:mod:`..data.manifest`; it names the folder, and its change reruns this stage).
    Transparent pixels become ``background``. Regions given with the images are packed by the
    prepare_regions stage. Returns the packing summary.
    """
    if (images is None) == (manifest is None):
        raise TypeError("give the images folder or its manifest, exactly one")
    folder = images if images is not None else manifest_folder(manifest)
    summary = pack_image_folder(folder, labels, samples, image_size, validation_fraction, seed, background)
    log.info("packed %d images of %dx%d", summary["images"], image_size, image_size)
    return {"summary": summary | {"images_folder": str(folder)}}
