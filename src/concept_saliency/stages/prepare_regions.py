"""The prepare_regions stage: regions given with a user's images (boxes, masks) -> ``regions.h5``."""

from __future__ import annotations

import logging

from ..data.manifest import manifest_folder
from ..data.region_packing import pack_image_regions

log = logging.getLogger("concept_saliency")


def prepare_regions(*, samples: str, labels: str, manifest: str, regions: str, boxes: str | None = None,
                    masks: str | None = None) -> dict:
    """Pack the regions of the images of ``samples`` (packed from the folder ``manifest`` lists
    and the attribute table ``labels``) into ``regions``: ``boxes``, a table of boxes on the
    images (image, region, x0, y0, x1, y1); ``masks``, the manifest of a folder of region masks
    (one subfolder per region, a mask per image). A stage of its own, so that editing a region
    reruns the scoring only. Returns the packing summary."""
    summary = pack_image_regions(samples, labels, manifest_folder(manifest), regions, boxes_path=boxes,
                                 masks_dir=manifest_folder(masks) if masks else None)
    log.info("packed the regions of %d images: %s", summary["images"],
             ", ".join([*summary["box_regions"], *summary.get("mask_regions", {})]))
    return {"summary": summary}
