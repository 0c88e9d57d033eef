"""CelebA: the official tables, the paper's landmark crop, and streaming parallel packing.

- :func:`read_attributes`, :func:`read_landmarks`, :func:`read_partition` read
  the official whitespace-separated ``.txt`` files (count line, header line,
  rows) and the Kaggle mirror's CSV forms alike (the format is sniffed).
- :func:`crop_box` is the crop of Brocki & Chung: rows ``nose_y-105 :
  leftmouth_y+35``, columns ``lefteye_x-50 : righteye_x+50`` in the
  coordinates of the 178x218 aligned images, scaled to the actual image size
  and clamped to the image; :func:`crop_resize` cuts it out and resizes it.
- :func:`crop_and_pack` packs every image into a sample store, decoding in
  parallel worker processes with a bounded number of blocks in flight, so
  memory does not grow with the number of images. Unreadable images, ids
  missing from a table and table rows for missing images are listed in a
  report; the stage fails only when more than ``max_bad_fraction`` is bad.

Images are read straight from ``img_align_celeba.zip`` (no extraction) or
from a folder. Where the files are (a directory, or downloads) is
:mod:`concept_saliency.sources`' business.
"""

from __future__ import annotations

import io
import logging
import math
import os
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..errors import InputDataError
from ..face_parts import FACE_PARTS, face_part_boxes
from ..sources import CELEBA_ATTRIBUTES as ATTRIBUTES  # noqa: F401 (the 40, in the table's order)

log = logging.getLogger(__name__)

LANDMARKS = ("lefteye_x", "lefteye_y", "righteye_x", "righteye_y", "nose_x", "nose_y",
             "leftmouth_x", "leftmouth_y", "rightmouth_x", "rightmouth_y")
#: Size of the official aligned images, in whose coordinates the landmarks are given.
ALIGNED_SIZE = (178, 218)  # width, height
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_FORMATS = ("JPEG", "PNG")  # the decoders tried (no probing of every format PIL knows)
TRAIN_PARTITION = 0  # list_eval_partition: 0 train, 1 validation, 2 test
#: Limits on what a zip of images may expand to (a 178x218 aligned JPEG is about 10 KB; the
#: official zip expands to 1.4 GB): a member or an archive beyond them is refused unread.
MAX_IMAGE_BYTES = 64 << 20
MAX_EXPANDED_BYTES = 64 << 30
#: An image with more pixels than this is refused before it is decoded (decompression bombs).
MAX_IMAGE_PIXELS = 40_000_000

# ------------------------------------------------------------------ tables


@dataclass
class Table:
    ids: list[str]  # image file names as in the table, e.g. "000001.jpg"
    values: np.ndarray  # (N, columns) int
    columns: list[str]
    path: str

    def index(self) -> dict[str, int]:
        return {_stem(s): i for i, s in enumerate(self.ids)}


def _stem(name: str) -> str:
    """``"000001.jpg"`` -> ``"000001"`` (fast: called for every row of a 200k-row table)."""
    base = name.rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[0] if "." in base else base


def _read_table(path, what: str, columns: Sequence[str] | None, header_lines: int | None) -> Table:
    """Official (whitespace, ``header_lines`` lines before the rows) or CSV (one header line)."""
    import pandas as pd

    path = Path(path)
    try:
        with open(path) as f:
            first = f.readline()
            second = f.readline()
    except OSError as exc:
        raise InputDataError(f"{path}: cannot read the {what} table ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise InputDataError(f"{path}: not a text file; expected the CelebA {what} table") from None
    csv = "," in first
    if csv:
        names = [c.strip() for c in first.strip().split(",")][1:]
        skip, first_data_line = 1, 2
    elif header_lines:
        if not first.strip().isdigit():
            raise InputDataError(
                f"{path}: line 1 should be the number of images (official CelebA format) or a CSV "
                f"header; found {first.strip()[:60]!r}"
            )
        names = second.split()
        skip, first_data_line = header_lines, header_lines + 1
    else:  # the official partition file: no header
        names = list(columns or [])
        skip, first_data_line = 0, 1
    if columns is not None and names != list(columns):
        missing = [c for c in columns if c not in names]
        raise InputDataError(
            f"{path}: expected the {what} columns {', '.join(columns[:4])}, ... "
            + (f"({', '.join(missing[:5])} missing)" if missing else "(in the official order)")
            + f"; found {', '.join(names[:6])}{' ...' if len(names) > 6 else ''}"
        )
    kw = dict(sep="," if csv else r"\s+", skiprows=skip, header=None, index_col=False)
    try:
        table = pd.read_csv(path, dtype={0: str}, **kw)
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as exc:
        raise InputDataError(f"{path}: cannot parse the {what} table ({exc})") from None
    except pd.errors.EmptyDataError:
        raise InputDataError(f"{path}: the {what} table has no rows") from None
    if table.shape[1] != len(names) + 1:
        raise InputDataError(
            f"{path}: expected an image name and {len(names)} values per row, found "
            f"{table.shape[1]} columns"
        )
    values = table.iloc[:, 1:]
    if all(pd.api.types.is_integer_dtype(t) for t in values.dtypes):
        numeric = values.to_numpy(dtype=np.int64)
    else:  # find the first value that is not an integer, to say where it is
        coerced = values.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(coerced) | (coerced != np.round(coerced))  # inf is no integer either
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise InputDataError(
                f"{path}: line {row + first_data_line}, column '{names[col]}': "
                f"{values.iat[row, col]!r} is not an integer"
            )
        numeric = coerced.astype(np.int64)
    id_col = table.iloc[:, 0].astype(str).str.strip()
    ids = id_col.tolist()
    if not csv and header_lines and int(first) != len(ids):
        raise InputDataError(
            f"{path}: line 1 announces {int(first)} images but the table has {len(ids)} rows; "
            f"the file is truncated or damaged: download it again"
        )
    dup = id_col.duplicated(keep=False).to_numpy()
    if dup.any():
        rows = np.nonzero(dup)[0]
        first_dup = ids[rows[0]]
        twice = [r + first_data_line for r in rows if ids[r] == first_dup][:2]
        raise InputDataError(
            f"{path}: image '{first_dup}' appears twice (lines {twice[0]} and {twice[1]}); "
            f"keep one row per image"
        )
    return Table(ids, numeric, names, str(path))


def read_attributes(path) -> Table:
    """The 40 binary attributes (-1/1, or 0/1) per image; values become 0/1."""
    t = _read_table(path, "attribute", None, header_lines=2)
    bad = ~np.isin(t.values, (-1, 0, 1))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        line = row + (2 if Path(path).suffix.lower() == ".csv" or "," in _first_line(path) else 3)
        raise InputDataError(
            f"{path}: line {line}, attribute '{t.columns[col]}': {t.values[row, col]} is not -1, 0 or 1"
        )
    t.values = (t.values == 1).astype(np.int8)
    return t


def read_landmarks(path) -> Table:
    """The five aligned landmarks per image (x, y in the 178x218 aligned images).

    A coordinate outside the aligned image is an error (naming its line and column):
    the crop it gives would not be the paper's, or would lie outside the image.
    """
    t = _read_table(path, "landmark", LANDMARKS, header_lines=2)
    limits = np.array([ALIGNED_SIZE[0] if c.endswith("_x") else ALIGNED_SIZE[1] for c in t.columns])
    bad = (t.values < 0) | (t.values > limits)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        first_data_line = 2 if "," in _first_line(path) else 3
        raise InputDataError(
            f"{path}: line {row + first_data_line}, column '{t.columns[col]}': {t.values[row, col]} "
            f"is outside the {ALIGNED_SIZE[0]}x{ALIGNED_SIZE[1]} aligned image the landmarks refer "
            f"to; fix or remove the row (landmarks are for the official aligned images)"
        )
    return t


def read_partition(path) -> Table:
    """The official split: 0 train, 1 validation, 2 test."""
    csv = "," in _first_line(path)
    t = _read_table(path, "partition", None if csv else ["partition"], header_lines=1 if csv else 0)
    if t.values.shape[1] != 1 or not np.isin(t.values, (0, 1, 2)).all():
        raise InputDataError(f"{path}: expected one partition per image, 0 (train), 1 (val) or 2 (test)")
    return t


def _first_line(path) -> str:
    with open(path) as f:
        return f.readline()


# ------------------------------------------------------------------ the crop


def crop_box(landmarks: Sequence[float], width: int, height: int) -> tuple[float, float, float, float] | None:
    """The paper's crop ``(left, top, right, bottom)`` in pixels of a ``width`` x ``height`` image.

    ``landmarks`` are the ten values of :data:`LANDMARKS` for the 178x218 aligned
    images; they are scaled to the image size and the box is clamped to the image.
    Returns None when nothing of the box lies inside the image.
    """
    left, top, right, bottom = (float(v[0]) for v in _crop_edges(np.asarray([landmarks]), width, height))
    if right - left < 1 or bottom - top < 1:
        return None
    return left, top, right, bottom


def _crop_edges(landmarks: np.ndarray, width: int, height: int) -> tuple[np.ndarray, ...]:
    """The paper's crop edges ``(left, top, right, bottom)`` of each row of ``(N, 10)`` landmarks
    (:data:`LANDMARKS`, 178x218 image), scaled to a ``width`` x ``height`` image and clamped to it:
    50 px beside the eyes, 105 px above the nose, 35 px below the mouth."""
    lm = np.asarray(landmarks, dtype=np.float64).reshape(-1, 10)
    sx, sy = width / ALIGNED_SIZE[0], height / ALIGNED_SIZE[1]
    at = {name: lm[:, i] for i, name in enumerate(LANDMARKS)}
    return (np.clip((at["lefteye_x"] - 50) * sx, 0, width), np.clip((at["nose_y"] - 105) * sy, 0, height),
            np.clip((at["righteye_x"] + 50) * sx, 0, width), np.clip((at["leftmouth_y"] + 35) * sy, 0, height))


def packed_landmarks(landmarks: np.ndarray, size: int) -> np.ndarray:
    """``(N, 10)`` landmarks of the 178x218 aligned images -> positions in the packed
    ``size`` x ``size`` crop (:func:`crop_box` then the resize; the same whatever the image's
    own size, since the box scales with it)."""
    lm = np.asarray(landmarks, dtype=np.float64).reshape(-1, 10)
    left, top, right, bottom = _crop_edges(lm, *ALIGNED_SIZE)
    out = lm.copy()
    out[:, 0::2] = (lm[:, 0::2] - left[:, None]) * size / np.maximum(right - left, 1e-9)[:, None]
    out[:, 1::2] = (lm[:, 1::2] - top[:, None]) * size / np.maximum(bottom - top, 1e-9)[:, None]
    return out.astype(np.float32)


def crop_resize(image, landmarks: Sequence[float], size: int) -> np.ndarray:
    """Crop a PIL image with :func:`crop_box` and resize it to ``size`` x ``size`` (RGB uint8).

    As the notebook, the image is cropped first (nothing outside the box is
    resampled), then resized (bilinear, antialiased). A box scaled to a smaller image
    has fractional edges: the enclosing pixels are cropped and the exact box within
    them is resampled, so it covers the same part of the face as at 178x218; at
    integer edges this is the plain crop ``img[top:bottom, left:right]`` then resize.
    """
    from PIL import Image

    box = crop_box(landmarks, *image.size)
    if box is None:
        raise ValueError(f"the crop lies outside the {image.size[0]}x{image.size[1]} image")
    if image.mode != "RGB":
        image = image.convert("RGB")
    left, top, right, bottom = box
    l0, t0 = math.floor(left), math.floor(top)
    region = image.crop((l0, t0, math.ceil(right), math.ceil(bottom)))
    inner = (left - l0, top - t0, right - l0, bottom - t0)
    return np.asarray(region.resize((size, size), Image.BILINEAR, box=inner, reducing_gap=None),
                      dtype=np.uint8)


# ------------------------------------------------------------------ image sources


def _unsafe_member(name: str) -> bool:
    """A zip member name that would point outside a folder it were extracted to."""
    p = name.replace("\\", "/")
    return p.startswith("/") or (len(p) > 1 and p[1] == ":") or ".." in p.split("/")


def _junk_member(name: str) -> bool:
    """Metadata that archivers add beside the images (macOS resource forks)."""
    return name.startswith("__MACOSX/") or name.rsplit("/", 1)[-1].startswith("._")


def list_images(source: str | os.PathLike, max_image_bytes: int = MAX_IMAGE_BYTES,
                max_expanded_bytes: int = MAX_EXPANDED_BYTES) -> dict[str, str]:
    """Image id (file stem) -> member name in a zip, or file path in a folder.

    A zip is refused as a whole, before any image is read, when a member's name points
    outside the archive (absolute, or with ``..``; nothing is ever extracted, but such an
    archive is hostile), when one image expands beyond ``max_image_bytes`` or all of them
    beyond ``max_expanded_bytes``, or when two members are the same image id.
    """
    source = Path(source)
    if source.is_dir():
        found = {}
        for entry in os.scandir(source):
            if entry.name.lower().endswith(IMAGE_SUFFIXES) and entry.is_file():
                found[_stem(entry.name)] = entry.path
        if not found and (source / "img_align_celeba").is_dir():
            return list_images(source / "img_align_celeba")
        return found
    try:
        with zipfile.ZipFile(source) as zf:
            infos = zf.infolist()
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise InputDataError(
            f"{source}: not a readable zip of images ({exc}); give img_align_celeba.zip or a "
            f"folder of the aligned images"
        ) from None
    refuse = "refusing this zip: give the official img_align_celeba.zip or a folder of the images"
    hostile = next((i.filename for i in infos if _unsafe_member(i.filename)), None)
    if hostile is not None:
        raise InputDataError(f"{source}: member '{hostile[:200]}' points outside the archive "
                             f"(an absolute path or '..'); {refuse}")
    images = [i for i in infos if i.filename.lower().endswith(IMAGE_SUFFIXES)
              and not i.is_dir() and not _junk_member(i.filename)]
    big = next((i for i in images if i.file_size > max_image_bytes), None)
    if big is not None:
        raise InputDataError(f"{source}: member '{big.filename}' expands to {big.file_size:,} bytes, "
                             f"more than the {max_image_bytes:,} an image may have; {refuse}")
    total = sum(i.file_size for i in images)
    if total > max_expanded_bytes:
        raise InputDataError(f"{source}: its images expand to {total:,} bytes, more than the "
                             f"limit of {max_expanded_bytes:,}; {refuse}")
    found: dict[str, str] = {}
    for i in images:
        sid = _stem(i.filename)
        if sid in found:
            raise InputDataError(f"{source}: image id '{sid}' is in the zip twice ('{found[sid]}' and "
                                 f"'{i.filename}'); keep one file per image")
        found[sid] = i.filename
    return found


_ZIPS: dict[tuple[int, str], zipfile.ZipFile] = {}  # each process opens each zip once


def _read_bytes(source: str, member: str) -> bytes:
    if os.path.isdir(source):
        with open(member, "rb") as f:
            return f.read()
    key = (os.getpid(), source)  # a forked worker must not share its parent's file offset
    zf = _ZIPS.get(key)
    if zf is None:
        zf = _ZIPS[key] = zipfile.ZipFile(source)
    if zf.getinfo(member).file_size > MAX_IMAGE_BYTES:  # reading stops at the declared size
        raise ValueError(f"the image expands to more than {MAX_IMAGE_BYTES} bytes")
    return zf.read(member)


def _crop_block(source: str, members: Sequence[str], landmarks: np.ndarray, size: int):
    """Decode and crop one block; returns (pixels of the good ones, ok mask, error messages)."""
    from PIL import Image

    out = np.empty((len(members), size, size, 3), dtype=np.uint8)
    ok = np.zeros(len(members), dtype=bool)
    errors: list[str] = []
    for i, member in enumerate(members):
        try:
            with Image.open(io.BytesIO(_read_bytes(source, member)), formats=_FORMATS) as im:
                if im.width * im.height > MAX_IMAGE_PIXELS:  # checked before decoding
                    raise ValueError(f"{im.width}x{im.height} pixels, more than an aligned face "
                                     f"image has ({MAX_IMAGE_PIXELS} at most)")
                im.load()  # a truncated JPEG fails here
                out[i] = crop_resize(im, landmarks[i], size)
            ok[i] = True
            errors.append("")
        except Exception as exc:  # noqa: BLE001 - any decoding failure makes the image bad
            errors.append(f"{type(exc).__name__}: {exc}".replace("\t", " ").replace("\n", " ")[:200])
    return out[ok], ok, errors


def _blocks_in_order(source: str, members: list[str], landmarks: np.ndarray, size: int,
                     block: int, workers: int) -> Iterator[tuple[int, tuple]]:
    """``(start, result of _crop_block)`` for consecutive blocks, in order.

    With ``workers > 1`` blocks are decoded in worker processes, at most
    ``2 * workers`` blocks in flight: memory stays flat however many images there are.
    """
    starts = range(0, len(members), block)
    if workers <= 1:
        for s in starts:
            yield s, _crop_block(source, members[s:s + block], landmarks[s:s + block], size)
        return
    import gc
    import multiprocessing as mp
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    # fork: no re-import of the caller's __main__ (Snakemake scripts are not import-safe)
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        pending: deque = deque()
        it = iter(starts)
        # The workers are forked at the first submits: they must never garbage-collect the
        # caller's objects (the finalizers of a loaded TensorFlow or JAX crash in a fork).
        gc.collect()
        gc.freeze()
        try:
            for s in it:
                pending.append((s, pool.submit(_crop_block, source, members[s:s + block],
                                               landmarks[s:s + block], size)))
                if len(pending) >= 2 * workers:
                    break
        finally:
            gc.unfreeze()
        while pending:
            s, fut = pending.popleft()
            nxt = next(it, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(_crop_block, source, members[nxt:nxt + block],
                                                 landmarks[nxt:nxt + block], size)))
            yield s, fut.result()


# ------------------------------------------------------------------ packing


PROBLEMS = {
    "missing_image": "a landmark row names an image that is not there",
    "no_landmarks": "no landmark row for the image: it cannot be cropped",
    "no_attributes": "no attribute row for the image",
    "no_partition": "no partition row for the image",
    "unreadable": "the image cannot be decoded (damaged or truncated)",
}


def _chunk_samples(size: int) -> int:
    """Samples per HDF5 chunk: about 2 MB of pixels, 16 to 256 samples."""
    return int(np.clip((2 << 20) // (size * size * 3), 16, 256))


def write_report(path, summary: dict, problems: list[tuple[str, str, str]]) -> None:
    """The crop_pack report: counts, then one tab-separated line per bad image."""
    from ..artifacts import write_text_atomic

    lines = ["# CelebA crop and pack", ""]
    width = max(len(k) for k in summary["counts"]) + 2
    for key, value in summary["counts"].items():
        lines.append(f"{key:<{width}}{value}")
    lines += ["", "id\tproblem\tdetail"]
    lines += [f"{i}\t{p}\t{d}" for i, p, d in problems]
    write_text_atomic(path, "\n".join(lines) + "\n")


def crop_and_pack(images, attributes, landmarks, out_path, report_path, *, image_size: int,
                  partition=None, validation_fraction: float = 0.2, seed: int = 0,
                  workers: int = 1, limit: int | None = None, max_bad_fraction: float = 0.001,
                  block: int = 128, max_expanded_bytes: int = MAX_EXPANDED_BYTES) -> dict:
    """Crop every CelebA image with its landmarks and pack it into a sample store.

    The images to pack are those in ``images`` (a zip or folder) or named in
    the landmark table, sorted by id (the first ``limit`` only, if given). An
    image missing from a table, a landmark row without its image and an image
    that cannot be decoded are bad: left out and listed in ``report_path``.
    When more than ``max_bad_fraction`` of them are bad the stage stops with
    an :class:`InputDataError` and writes no sample store.

    The split is the official one when ``partition`` is given (train = 0;
    validation and test are held out), else a random ``validation_fraction``.
    """
    t0 = time.time()
    attr = read_attributes(attributes)
    land = read_landmarks(landmarks)
    part = read_partition(partition) if partition else None
    members = list_images(images, max_expanded_bytes=max_expanded_bytes)
    if not members:
        raise InputDataError(f"{images}: no images (.jpg, .png) found")
    attr_idx, land_idx = attr.index(), land.index()
    part_idx = part.index() if part is not None else None
    expected = sorted(set(members) | set(land_idx))
    if limit:
        expected = expected[:limit]
    allowed = math.floor(max_bad_fraction * len(expected))

    problems: list[tuple[str, str, str]] = []
    good: list[str] = []
    for sid in expected:
        if sid not in members:
            problems.append((sid, "missing_image", f"row in {Path(landmarks).name}, no image"))
        elif sid not in land_idx:
            problems.append((sid, "no_landmarks", f"not in {Path(landmarks).name}"))
        elif sid not in attr_idx:
            problems.append((sid, "no_attributes", f"not in {Path(attributes).name}"))
        elif part_idx is not None and sid not in part_idx:
            problems.append((sid, "no_partition", f"not in {Path(partition).name}"))
        else:
            good.append(sid)
    log.info("%d images expected (%d in %s, %d landmark rows); %d lack a file or a table row",
             len(expected), len(members), Path(images).name, len(land.ids), len(problems))

    def summary(packed: int) -> dict:
        counts = {"images expected": len(expected), "images packed": packed}
        for kind in PROBLEMS:
            counts[kind] = sum(1 for p in problems if p[1] == kind)
        counts["bad fraction"] = f"{len(problems) / max(len(expected), 1):.5f}"
        counts["max_bad_fraction"] = max_bad_fraction
        counts["attribute rows outside this image set"] = len(set(attr_idx) - set(expected))
        return {"counts": counts, "image_size": image_size, "workers": workers,
                "seconds": round(time.time() - t0, 2)}

    def fail() -> None:
        # No report file: it is an output of the stage, which a failed job does not leave
        # behind (Snakemake removes it); every bad image is in the stage's log instead.
        kinds = {k: sum(1 for p in problems if p[1] == k) for k in PROBLEMS}
        found = ", ".join(f"{n} {k}" for k, n in kinds.items() if n)
        examples = "; ".join(f"{i}: {p}" + (f" ({d})" if d else "") for i, p, d in problems[:3])
        for i, p, d in problems[:1000]:
            log.error("bad image %s: %s %s", i, p, d)
        raise InputDataError(
            f"{images}: too many bad images: {found} of {len(expected)} (more than "
            f"max_bad_fraction={max_bad_fraction}); e.g. {examples}. Every bad image is listed in "
            f"the stage's log; fix the files, or raise 'max_bad_fraction' in the dataset's celeba "
            f"source."
        )

    if len(problems) > allowed:
        fail()
    member_list = [members[s] for s in good]
    lm = land.values[[land_idx[s] for s in good]].astype(np.float64)
    labels = attr.values[[attr_idx[s] for s in good]]
    from ..progress import Progress
    from .samples import TRAIN, VALIDATION, append_sample_store, assign_split

    kept: list[int] = []
    progress = Progress("cropped", len(good), "images")
    with append_sample_store(out_path, (image_size, image_size, 3), np.uint8, attr.columns,
                             attrs={"source": str(images), "kind": "celeba-crop"},
                             chunk_samples=_chunk_samples(image_size),
                             compression=None) as store:  # lzf saves ~2% on these pixels
        for start, (pixels, ok, errors) in _blocks_in_order(str(images), member_list, lm,
                                                            image_size, block, workers):
            ids = good[start:start + len(ok)]
            for sid, good_one, err in zip(ids, ok, errors):
                if not good_one:
                    problems.append((sid, "unreadable", err))
            if len(problems) > allowed:
                fail()
            rows = start + np.nonzero(ok)[0]
            kept += rows.tolist()
            store.append(pixels, [ids[i] for i in np.nonzero(ok)[0]], labels[rows])
            progress.update(len(ok))
        if part is not None:
            split = np.where(part.values[[part_idx[good[i]] for i in kept], 0] == TRAIN_PARTITION,
                             TRAIN, VALIDATION).astype(np.int8)
        else:
            split = assign_split(len(kept), validation_fraction, seed)
        if not kept:
            for i, p, d in problems[:1000]:
                log.error("bad image %s: %s %s", i, p, d)
            raise InputDataError(f"{images}: no image could be packed (every one is bad; they are "
                                 f"listed in the stage's log)")
        parts = face_part_boxes(packed_landmarks(lm[kept], image_size), image_size)
        store.finish(split, parts, FACE_PARTS)
    result = summary(len(kept))
    write_report(report_path, result, problems)
    rate = len(good) / max(time.time() - t0, 1e-9)
    log.info("packed %d images of %dx%d (%d bad) with %d worker(s), %.0f images/s",
             len(kept), image_size, image_size, len(problems), workers, rate)
    result["images_per_s"] = round(rate, 1)
    result["held_out"] = int((split != TRAIN).sum())
    return result
