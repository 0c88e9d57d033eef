"""The crop_pack stage: CelebA images cropped with their landmarks, into the sample store."""

from __future__ import annotations

import logging

from ..artifacts import Provenance

log = logging.getLogger("concept_saliency")


def crop_pack(*, images: str, attributes: str, landmarks: str, samples: str, report: str,
              image_size: int, validation_fraction: float, seed: int, limit: int | None = None,
              max_bad_fraction: float = 0.001, max_archive_gb: float = 64,
              partition: str | None = None, manifest: str | None = None, threads: int = 1) -> None:
    """Crop (the paper's landmark box), resize and pack every image; list the bad ones in ``report``.

    ``manifest``: where ``images`` is a folder, its listing (written while the DAG is built),
    so that an image edited in place reruns the stage; recorded, not read."""
    from ..data.celeba import crop_and_pack

    params = dict(image_size=image_size, validation_fraction=validation_fraction, seed=seed,
                  limit=limit, max_bad_fraction=max_bad_fraction, max_archive_gb=max_archive_gb,
                  split="official partition" if partition else "random")
    inputs = {"images": images, "attributes": attributes, "landmarks": landmarks}
    prov = Provenance("crop_pack", params, inputs | ({"partition": partition} if partition else {})
                      | ({"manifest": manifest} if manifest else {}))
    summary = crop_and_pack(images, attributes, landmarks, samples, report, image_size=image_size,
                            partition=partition, validation_fraction=validation_fraction,
                            seed=seed, workers=threads, limit=limit,
                            max_bad_fraction=max_bad_fraction,
                            max_expanded_bytes=int(max_archive_gb * 1e9))
    prov.extra["summary"] = summary
    prov.write(samples, "csm.samples")
    prov.write(report, "csm.report")
