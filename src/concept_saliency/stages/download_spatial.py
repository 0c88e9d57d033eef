"""The download_spatial stage: one input file of a spatial dataset, fetched and verified."""

from __future__ import annotations

import logging

from ..artifacts import Provenance, file_checksum

log = logging.getLogger("concept_saliency")


def download_spatial(*, dest: str, source: str, checksum: str | None = None, retries: int = 5) -> None:
    """Fetch ``source`` (URL or local path) to ``dest``: resumed, retried, checksum verified,
    renamed into place only when complete (:func:`concept_saliency.data.download.download`)."""
    from ..data.download import download

    prov = Provenance("download_spatial", dict(source=source, checksum=checksum, retries=retries))
    download(source, dest, checksum=checksum, retries=retries)
    prov.extra["file"] = {"checksum": file_checksum(dest), "verified_against": checksum}
    prov.write(dest, "csm.download")
    log.info("%s -> %s (%s)", source, dest, "checksum verified" if checksum else "no checksum given")
