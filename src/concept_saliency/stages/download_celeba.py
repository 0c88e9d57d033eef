"""The download_celeba stage: one official CelebA file, verified, resumable."""

from __future__ import annotations

import logging
import os

from ..artifacts import Provenance

log = logging.getLogger("concept_saliency")


def download_celeba(*, file: str, url: str, checksum: str | None = None, retries: int = 5,
                    backoff: float = 2.0) -> None:
    """Fetch ``url`` to ``file`` (a ``.part`` file first; resumed when rerun after an interruption)."""
    from ..data.download import download

    prov = Provenance("download_celeba", dict(url=url, checksum=checksum, retries=retries,
                                              backoff=backoff))
    log.info("downloading %s -> %s", url, file)
    download(url, file, checksum=checksum, retries=retries, backoff=backoff)
    prov.extra["bytes"] = os.path.getsize(file)
    prov.write(file, "csm.download")
    log.info("%s: %s bytes%s", file, f"{prov.extra['bytes']:,}",
             f", {checksum.split(':')[0]} verified" if checksum else " (no checksum given)")
