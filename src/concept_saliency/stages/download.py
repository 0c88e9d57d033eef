"""The download stage: one input file, fetched (or copied) and verified."""

from __future__ import annotations

import logging
import os

from ..artifacts import file_checksum
from ..data.download import download as fetch

log = logging.getLogger("concept_saliency")


def download(*, file: str, url: str, checksum: str | None = None, retries: int = 5,
             backoff: float = 2.0) -> dict:
    """Fetch ``url`` (a URL or a local path) to ``file``: through ``<file>.part``, resumed when
    rerun after an interruption, retried with back-off, verified against ``checksum``
    (``md5:<hex>``, ``sha256:<hex>``), renamed into place only when complete
    (:func:`concept_saliency.data.download.download`). Returns the file's size and checksum."""
    log.info("downloading %s -> %s", url, file)
    fetch(url, file, checksum=checksum, retries=retries, backoff=backoff)
    size = os.path.getsize(file)
    log.info("%s: %s bytes%s", file, f"{size:,}",
             f", {checksum.split(':')[0]} verified" if checksum else " (no checksum given)")
    return {"file": {"bytes": size, "checksum": file_checksum(file), "verified_against": checksum}}
