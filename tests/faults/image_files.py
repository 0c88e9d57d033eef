"""Real PNG and TIFF files that Pillow cannot write: 16-bit colour, grey + alpha, signed and float
samples, many channels. Written byte by byte after the PNG and TIFF 6.0 specifications."""

from __future__ import annotations

import struct
import zlib

import numpy as np

PNG_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> colour type (grey, grey+alpha, RGB, RGBA)


def png_bytes(values: np.ndarray, bits: int = 16, trns: bytes | None = None) -> bytes:
    """A PNG of ``values`` (H, W) or (H, W, C), each row Sub-filtered (so the decoder must undo a
    filter that reaches one whole pixel back)."""
    values = np.asarray(values)
    h, w = values.shape[:2]
    channels = 1 if values.ndim == 2 else values.shape[2]
    raw = values.astype(">u2" if bits == 16 else np.uint8).reshape(h, -1).view(np.uint8).astype(int)
    step = channels * bits // 8
    filtered = raw.copy()
    filtered[:, step:] = (raw[:, step:] - raw[:, :-step]) % 256
    rows = np.concatenate([np.ones((h, 1), int), filtered], axis=1).astype(np.uint8).tobytes()
    header = struct.pack(">IIBBBBB", w, h, bits, PNG_COLOUR_TYPES[channels], 0, 0, 0)
    chunks = [(b"IHDR", header)] + ([(b"tRNS", trns)] if trns else []) + [(b"IDAT", zlib.compress(rows)),
                                                                          (b"IEND", b"")]
    out = b"\x89PNG\r\n\x1a\n"
    for kind, data in chunks:
        out += struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return out


def tiff_bytes(values: np.ndarray, bits: int = 16, sample_format: int = 1, extra_samples=(),
               photometric: int | None = None, deflate: bool = False, big_endian: bool = False) -> bytes:
    """A one-strip TIFF of ``values`` (H, W) or (H, W, C). ``sample_format``: 1 unsigned, 2 signed,
    3 float; ``extra_samples``: the ExtraSamples tag (0 unspecified, 1 premultiplied alpha, 2 alpha);
    ``deflate``: compressed (Pillow then decodes through libtiff)."""
    values = np.asarray(values)
    h, w = values.shape[:2]
    channels = 1 if values.ndim == 2 else values.shape[2]
    order = ">" if big_endian else "<"
    kind = {1: "u", 2: "i", 3: "f"}[sample_format]
    data = values.astype(f"{order}{kind}{bits // 8}").tobytes()
    if deflate:
        data = zlib.compress(data)
    if photometric is None:
        photometric = 1 if channels - len(extra_samples) == 1 else 2
    tags = {256: [w], 257: [h], 258: [bits] * channels, 259: [8 if deflate else 1], 262: [photometric],
            273: [0], 277: [channels], 278: [h], 279: [len(data)], 284: [1],
            339: [sample_format] * channels}
    if extra_samples:
        tags[338] = list(extra_samples)
    long_tags = {256, 257, 273, 278, 279}
    ifd_end = 8 + 2 + 12 * len(tags) + 4
    blobs = b""
    entries = []
    for tag in sorted(tags):
        typ, fmt = (4, "I") if tag in long_tags else (3, "H")
        entries.append((tag, typ, fmt, tags[tag]))
    outside = sum(len(v) * struct.calcsize(fmt) for *_, fmt, v in entries if len(v) * struct.calcsize(fmt) > 4)
    data_at = ifd_end + outside
    ifd = struct.pack(order + "H", len(entries))
    for tag, typ, fmt, vals in entries:
        if tag == 273:
            vals = [data_at]
        payload = struct.pack(order + fmt * len(vals), *vals)
        if len(payload) > 4:
            ifd += struct.pack(order + "HHII", tag, typ, len(vals), ifd_end + len(blobs))
            blobs += payload
        else:
            ifd += struct.pack(order + "HHI", tag, typ, len(vals)) + payload.ljust(4, b"\0")
    ifd += struct.pack(order + "I", 0)
    return (b"MM" if big_endian else b"II") + struct.pack(order + "HI", 42, 8) + ifd + blobs + data
