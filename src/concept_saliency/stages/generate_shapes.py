"""The generate_shapes stage: the built-in demo's synthetic scenes, with known concept regions."""

from __future__ import annotations

import logging

from ..data.synthetic import make_shapes, write_shapes

log = logging.getLogger("concept_saliency")


def generate_shapes(*, images: str, attributes: str, masks: str, n_samples: int, image_size: int,
                    noise: float, prevalence: float, seed: int) -> None:
    """A folder of PNG scenes (``images``), their attribute table and ground-truth ``masks``."""
    data = make_shapes(n_samples, image_size, noise, prevalence, seed)
    write_shapes(data, images, attributes, masks)
    log.info("wrote %d synthetic images with attributes %s", n_samples, ", ".join(data.names))
