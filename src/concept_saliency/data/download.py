"""Robust downloads: partial files, resume, retries with back-off, checksums.

:func:`download` writes to ``<dest>.part``, resumes it with an HTTP ``Range``
request when the server allows (a server that answers 200 instead of 206 is
read from the start), retries failed or dropped transfers with exponential
back-off, verifies the checksum and renames the file into place only when it is
complete and correct. A download that finally fails, or whose checksum does
not match, removes its partial file and raises one error naming the URL, what
was expected and what came. A ``.part`` left by a killed process is resumed by
the next call.
"""

from __future__ import annotations

import http.client
import logging
import os
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..artifacts import disk_full_error, file_checksum, format_bytes, is_disk_full
from ..errors import DiskFullError, InputDataError
from ..sources import is_url

log = logging.getLogger(__name__)
_ALGORITHMS = ("md5", "sha256", "sha1")


class DownloadError(InputDataError):
    """A download failed, or its content is not what was expected."""


def parse_checksum(checksum: str | None) -> tuple[str, str] | None:
    """``"md5:abc..."`` / ``"sha256:..."`` -> (algorithm, hex digest); a bare hex digest is
    taken as md5 (32 characters) or sha256 (64)."""
    if not checksum:
        return None
    if ":" in checksum:
        algo, digest = checksum.split(":", 1)
    else:
        digest = checksum
        algo = {32: "md5", 40: "sha1", 64: "sha256"}.get(len(checksum), "")
    algo, digest = algo.lower().strip(), digest.lower().strip()
    if algo not in _ALGORITHMS or not digest or any(ch not in "0123456789abcdef" for ch in digest):
        raise InputDataError(f"checksum {checksum!r}: write it as md5:<hex> or sha256:<hex>")
    return algo, digest


def download(source: str, dest: str | os.PathLike, *, checksum: str | None = None,
             retries: int = 5, backoff: float = 1.0, timeout: float = 60.0,
             chunk_size: int = 1 << 20) -> Path:
    """Fetch ``source`` (a URL or a local path) to ``dest``; returns ``dest``."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    expected = parse_checksum(checksum)
    part = dest.with_name(dest.name + ".part")
    if not is_url(source):  # a file the user already has: copy, then verify
        src = Path(source)
        if not src.is_file():
            raise DownloadError(f"{source}: no such file")
        try:
            shutil.copyfile(src, part)
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            part.unlink(missing_ok=True)
            raise disk_full_error(dest, expected=src.stat().st_size) from None
    else:
        _fetch(source, part, retries=retries, backoff=backoff, timeout=timeout, chunk_size=chunk_size)
    if expected:
        algo, digest = expected
        got = file_checksum(part, algo).split(":", 1)[1]
        if got != digest:
            size = part.stat().st_size
            part.unlink()
            raise DownloadError(
                f"{source}: checksum mismatch: expected {algo}:{digest}, got {algo}:{got} "
                f"({size:,} bytes). The file was removed; check the URL and the checksum in the config."
            )
    os.replace(part, dest)
    return dest


def _fetch(url: str, part: Path, *, retries: int, backoff: float, timeout: float, chunk_size: int) -> None:
    attempt = 0
    total: int | None = None
    last_error = ""
    while True:
        have = part.stat().st_size if part.exists() else 0
        if total is not None and have == total:
            return
        request = urllib.request.Request(url, headers={"User-Agent": "concept-saliency"})
        if have:
            request.add_header("Range", f"bytes={have}-")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status = getattr(response, "status", 200)
                if have and status == 206:
                    mode = "ab"
                    log.info("resuming %s at byte %d", url, have)
                else:
                    mode, have = "wb", 0
                length = response.headers.get("Content-Length")
                if length is not None:
                    total = have + int(length)
                t0, last_log = time.time(), time.time()
                with open(part, mode) as f:
                    while True:
                        block = response.read(chunk_size)
                        if not block:
                            break
                        f.write(block)
                        have += len(block)
                        if time.time() - last_log > 30:
                            last_log = time.time()
                            rate = have / max(time.time() - t0, 1e-9)
                            log.info("%s: %s/%s bytes, %.1f MB/s", url, f"{have:,}",
                                     f"{total:,}" if total else "?", rate / 1e6)
            if total is not None and have < total:
                raise ConnectionError(f"connection closed after {have:,} of {total:,} bytes")
            return
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and part.exists():  # range beyond the end: start again
                part.unlink()
            last_error = f"HTTP {exc.code} {exc.reason}"
            if 400 <= exc.code < 500 and exc.code not in (408, 416, 429):
                _fail(url, part, last_error)
        except OSError as exc:
            if is_disk_full(exc):  # no retry helps; the partial download is kept and resumed
                free = shutil.disk_usage(part.parent).free
                need = f"{format_bytes(total - have)} more" if total else "more"
                raise DiskFullError(
                    f"{part}: the disk is full ({format_bytes(free)} free) after {have:,} bytes of "
                    f"{url}; {need} is needed. Free space and rerun: the download resumes where it "
                    f"stopped.") from None
            last_error = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
        except http.client.HTTPException as exc:
            last_error = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
        attempt += 1
        if attempt > retries:
            _fail(url, part, f"{last_error} (after {retries} retries)")
        wait = backoff * 2 ** (attempt - 1)
        log.warning("%s: %s; retry %d/%d in %.1fs", url, last_error, attempt, retries, wait)
        time.sleep(wait)


def _fail(url: str, part: Path, reason: str) -> None:
    if part.exists():
        part.unlink()
    raise DownloadError(f"{url}: download failed: {reason}. Nothing was kept; check the URL or "
                        f"the network, or point the config at a local copy.")
