"""The crop_pack stage: CelebA images cropped with their landmarks, into the sample store."""

from __future__ import annotations

import logging

from ..data.celeba import crop_and_pack

log = logging.getLogger("concept_saliency")


def crop_pack(*, images: str, attributes: str, landmarks: str, samples: str, report: str,
              image_size: int, validation_fraction: float, seed: int, limit: int | None = None,
              max_bad_fraction: float = 0.001, max_archive_gb: float = 64,
              partition: str | None = None, manifest: str | None = None, threads: int = 1) -> dict:
    """Crop (the paper's landmark box), resize and pack every image; list the bad ones in ``report``.

    The official ``partition`` gives the held-out split when present (else a random
    ``validation_fraction``). ``manifest``: where ``images`` is a folder, its listing (written
    while the DAG is built) so that an image edited in place reruns the stage; not read.
    Returns the packing summary.
    """
    summary = crop_and_pack(images, attributes, landmarks, samples, report, image_size=image_size,
                            partition=partition, validation_fraction=validation_fraction,
                            seed=seed, workers=threads, limit=limit,
                            max_bad_fraction=max_bad_fraction,
                            max_expanded_bytes=int(max_archive_gb * 1e9))
    return {"summary": summary | {"split": "official partition" if partition else "random"}}
