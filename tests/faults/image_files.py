"""Real PNG and TIFF files that Pillow cannot write: 16-bit colour, grey + alpha, signed and float
samples, many channels. Written byte by byte after the PNG and TIFF 6.0 specifications."""

from __future__ import annotations

import struct
import zlib

import numpy as np

PNG_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> colour type (grey, grey+alpha, RGB, RGBA)


def png_bytes(values: np.ndarray, bits: int = 16, trns: bytes | None = None, icc: bytes | None = None) -> bytes:
    """A PNG of ``values`` (H, W) or (H, W, C), each row Sub-filtered (so the decoder must undo a
    filter that reaches one whole pixel back); ``icc``: an embedded colour profile (iCCP)."""
    values = np.asarray(values)
    h, w = values.shape[:2]
    channels = 1 if values.ndim == 2 else values.shape[2]
    raw = values.astype(">u2" if bits == 16 else np.uint8).reshape(h, -1).view(np.uint8).astype(int)
    step = channels * bits // 8
    filtered = raw.copy()
    filtered[:, step:] = (raw[:, step:] - raw[:, :-step]) % 256
    rows = np.concatenate([np.ones((h, 1), int), filtered], axis=1).astype(np.uint8).tobytes()
    header = struct.pack(">IIBBBBB", w, h, bits, PNG_COLOUR_TYPES[channels], 0, 0, 0)
    chunks = [(b"IHDR", header)]
    if icc:
        chunks.append((b"iCCP", b"test\0\0" + zlib.compress(icc)))
    if trns:
        chunks.append((b"tRNS", trns))
    chunks += [(b"IDAT", zlib.compress(rows)), (b"IEND", b"")]
    out = b"\x89PNG\r\n\x1a\n"
    for kind, data in chunks:
        out += struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return out


def tiff_bytes(values: np.ndarray, bits: int = 16, sample_format: int = 1, extra_samples=(),
               photometric: int | None = None, deflate: bool = False, big_endian: bool = False,
               palette: np.ndarray | None = None) -> bytes:
    """A one-strip TIFF of ``values`` (H, W) or (H, W, C). ``sample_format``: 1 unsigned, 2 signed,
    3 float; ``extra_samples``: the ExtraSamples tag (0 unspecified, 1 premultiplied alpha, 2 alpha);
    ``deflate``: compressed (Pillow then decodes through libtiff); ``palette``: (2**bits, 3) 8-bit
    colours, a palette image (photometric 3)."""
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
    if palette is not None:
        tags[262] = [3]
        tags[320] = [int(v) * 257 for v in np.asarray(palette).T.ravel()]  # all reds, greens, blues
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


# ------------------------------------------------------------------ ICC colour profiles (v2, matrix/TRC)


def _s15(x: float) -> bytes:
    return struct.pack(">i", round(x * 65536))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ \0\0\0\0" + _s15(x) + _s15(y) + _s15(z)


def _profile(space: bytes, tags: dict[bytes, bytes], name: str) -> bytes:
    text = name.encode() + b"\0"
    desc = b"desc\0\0\0\0" + struct.pack(">I", len(text)) + text + b"\0" * 78  # + empty Unicode, ScriptCode
    tags = {b"desc": desc, b"wtpt": _xyz(0.9642, 1.0, 0.8249), **tags}
    offset = 128 + 4 + 12 * len(tags)
    table = data = b""
    for signature, body in tags.items():
        body += b"\0" * (-len(body) % 4)
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body
    header = (struct.pack(">I", offset + len(data)) + b"lcms" + struct.pack(">I", 0x02100000) + b"mntr" + space
              + b"XYZ " + b"\0" * 12 + b"acsp" + b"\0" * 24 + struct.pack(">I", 0)
              + _s15(0.9642) + _s15(1.0) + _s15(0.8249) + b"\0" * 48)
    return header + struct.pack(">I", len(tags)) + table + data


def linear_profile(grey: bool = False) -> bytes:
    """An ICC profile of linear light (gamma 1) with sRGB's primaries (or a grey one): a pixel value
    v under it is sRGB's encoding of v / 255."""
    gamma_one = b"curv\0\0\0\0" + struct.pack(">IH", 1, 256) + b"\0\0"
    if grey:
        return _profile(b"GRAY", {b"kTRC": gamma_one}, "linear grey (test)")
    return _profile(b"RGB ", {b"rXYZ": _xyz(0.4361, 0.2225, 0.0139), b"gXYZ": _xyz(0.3851, 0.7169, 0.0971),
                              b"bXYZ": _xyz(0.1431, 0.0606, 0.7141), b"rTRC": gamma_one, b"gTRC": gamma_one,
                              b"bTRC": gamma_one}, "linear RGB (test)")
