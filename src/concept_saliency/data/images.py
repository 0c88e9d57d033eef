"""Image inputs: a folder of images plus a table of binary attributes.

The table is read by :mod:`.label_table`. :func:`decode_image` turns one file
into RGB values on the 8-bit scale, as faithfully as its format allows, or
refuses it; :func:`load_image` resizes and rounds once; :func:`pack_image_folder`
packs every image of the table into a sample store (``uint8``, read as 1/255).

How stored values map to the 8-bit scale (the README says the same):

- 1-, 2-, 4- and 8-bit samples: as the decoder scales them to 0..255 (2-bit 0..3 -> 0, 85, 170, 255);
- 16-bit samples ``v`` (grey, RGB, RGBA, grey + alpha; PNG or TIFF): ``v / 257`` (65535 -> 255);
- 32-bit float samples ``f`` (TIFF): ``255 f``; every ``f`` must be finite and in [0, 1];
- grey: the same value in R, G and B; palette images: the palette colour;
- an embedded ICC colour profile other than sRGB: applied (to sRGB, relative colorimetric) to 8-bit
  grey, RGB, RGBA and CMYK; without a profile, values are sRGB and CMYK is converted by Pillow's
  ``R = (255 - C)(255 - K) / 255`` and so on;
- transparency (an alpha channel, a palette's or PNG's transparent colour): composited on the
  background colour ``b`` as ``a c + (1 - a) b`` with ``a`` = alpha / its maximum, so a fully
  transparent pixel is the background whatever colour it hides;
- the EXIF orientation (JPEG, PNG, WebP, TIFF) is applied, so the image is upright.

Then the image is resized (bilinear, antialiased) in floating point and rounded
to the nearest integer once (halves up): 16-bit gradation survives resizing.

Refused, one line naming the file: anything Pillow cannot read or that is not a
PNG, JPEG, TIFF, BMP, GIF or WebP (EPS, which Pillow would hand to Ghostscript,
included); several frames (multi-page TIFF, animated GIF/PNG/WebP; a phone's
multi-picture JPEG gives its primary picture); signed or 32-bit integer samples
(no stated range); float samples outside [0, 1] or not finite; TIFFs with more
samples per pixel than grey/colour plus alpha; 16-bit CMYK, 16-bit premultiplied
alpha, CIELab and other modes with no faithful conversion to RGB; a colour
profile other than sRGB on 16-bit, float, palette or grey + alpha data, or one
that cannot be read; an EXIF orientation other than 1-8.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputDataError
from .label_table import read_label_table, resolve_images
from .samples import assign_split, create_sample_store

#: Formats read, recognised by content (not by file name).
READ_FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "GIF", "WEBP")  # JPEG includes multi-picture (MPO)
BACKGROUNDS = {"white": (255, 255, 255), "black": (0, 0, 0)}
#: 16-bit colour that Pillow decodes to 8 bits by keeping each sample's high byte (floor(v / 256)).
_COLOUR16 = re.compile(r"(RGB|RGBA|RGBX);16([BLN])")
_GREY16 = ("I;16", "I;16L", "I;16B", "I;16N")
#: Grey PNGs of fewer than 8 bits: the decoder scales their values to 0..255, not their
#: transparent grey value (tRNS).
_LOW_BIT_GREY = {"L;2": 2, "L;4": 4}
#: EXIF orientation -> the operation that makes an (H, W, ...) array upright.
_UPRIGHT = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],  # mirrored left-right
    3: lambda a: a[::-1, ::-1],  # rotated 180
    4: lambda a: a[::-1],  # mirrored top-bottom
    5: lambda a: a.swapaxes(0, 1),  # transposed
    6: lambda a: np.rot90(a, -1),  # stored rotated 90 anticlockwise: turn clockwise
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),  # transversed
    8: lambda a: np.rot90(a, 1),  # stored rotated 90 clockwise: turn anticlockwise
}


def background_rgb(value) -> tuple[int, int, int]:
    """The background colour of transparent pixels: ``white``, ``black`` or ``[r, g, b]`` (0-255)."""
    if isinstance(value, str) and value in BACKGROUNDS:
        return BACKGROUNDS[value]
    if (isinstance(value, (list, tuple)) and len(value) == 3
            and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value)):
        return tuple(value)
    raise ConfigError(f"config key 'image_folder.background': {value!r} is not white, black or "
                      f"[r, g, b] with values 0-255")


def decode_image(path: str | os.PathLike, background=(255, 255, 255)) -> np.ndarray:
    """The image at ``path`` as ``(H, W, 3)`` float64 values on the 8-bit scale [0, 255], not rounded.

    See the module docstring for how each kind of file maps and what is refused
    (:class:`InputDataError`, one line naming the file).
    """
    values, alpha = decode_upright(path)
    if values.shape[2] == 1:
        values = np.repeat(values, 3, axis=2)
    if alpha is not None:
        a = alpha[..., None]
        values = a * values + (1.0 - a) * np.asarray(background, dtype=np.float64)
    return values


def decode_upright(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """The values ``(H, W, 1 or 3)`` and alpha (``(H, W)`` in [0, 1], or None) of an image file,
    upright, before compositing (:func:`decode_image`)."""
    path = Path(path)
    with _read_errors(path), _open(path) as im:
        frames = getattr(im, "n_frames", 1)
        if frames > 1 and im.format != "MPO":
            raise InputDataError(f"{path}: holds {frames} frames ({im.format}: a multi-page image or an "
                                 f"animation); give one image per file")
        tiff = _tiff_layout(im, path)
        rawmodes = {_rawmode(t.args) for t in im.tile}  # the tiles are gone after loading
        im.load()
        values, alpha = _channels(_to_srgb(im, path, rawmodes), path, rawmodes, tiff)
        upright = _UPRIGHT[_orientation(im, path)]
    return upright(values), (upright(alpha) if alpha is not None else None)


@contextlib.contextmanager
def _read_errors(path: Path):
    """What Pillow raises while reading ``path``, as one :class:`InputDataError` naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        yield
    except InputDataError:
        raise
    except UnidentifiedImageError:
        raise InputDataError(f"{path}: cannot read the image (not a {', '.join(READ_FORMATS[:-1])} or "
                             f"{READ_FORMATS[-1]} file)") from None
    except Image.DecompressionBombError as exc:  # not an OSError: would be a traceback
        raise InputDataError(f"{path}: refused: {exc}") from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError) as exc:
        raise InputDataError(f"{path}: cannot read the image ({exc})") from None


def load_image(path: str | os.PathLike, size: int | None, background=(255, 255, 255)) -> np.ndarray:
    """An RGB uint8 image (:func:`decode_image`), resized (bilinear, antialiased) to ``size`` x ``size``
    in floating point if given, then rounded to the nearest integer (halves up)."""
    values = decode_image(path, background)
    if size is not None and values.shape[:2] != (size, size):
        values = resize_values(values, size)
    return _quantised(values)


def pack_image_folder(image_dir: str | os.PathLike, labels_path: str | os.PathLike,
                      out_path: str | os.PathLike, image_size: int,
                      validation_fraction: float, seed: int, background="white", block: int = 256) -> dict:
    """Pack every image the attribute table names, with every attribute column, into ``out_path``.

    Sample ids: :func:`.label_table.sample_id`. Transparent pixels become ``background``
    (:func:`background_rgb`). Images are streamed in blocks of ``block`` so memory does not grow
    with N. Regions given with the images (boxes, masks) are packed apart, by
    :func:`.regions.pack_image_regions`: editing them must not retrain the model.
    Returns a summary (counts) for the provenance record.
    """
    table = read_label_table(labels_path)
    files = resolve_images(table, image_dir)
    rgb = background_rgb(background)
    n = len(files)
    split = assign_split(n, validation_fraction, seed)
    labels = np.asarray(table.positive, dtype=bool).reshape(n, len(table.attributes))
    with create_sample_store(out_path, n, (image_size, image_size, 3), np.uint8, list(table.ids),
                             split, labels=labels, label_names=list(table.attributes),
                             attrs={"source": str(image_dir)}) as x:
        for start in range(0, n, block):
            pixels = []
            for f in files[start:start + block]:
                values = decode_image(f, rgb)
                pixels.append(_quantised(resize_values(values, image_size) if values.shape[:2] != (image_size,) * 2
                                         else values))
            x[start:start + len(pixels)] = np.stack(pixels)
    return {"images": n, "attributes": list(table.attributes)}


def upright_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(height, width)`` of an image as it is displayed (upright: the EXIF orientation applied).
    Most formats give both in their header; Pillow decodes a PNG whose EXIF, if any, would
    follow its pixels."""
    path = Path(path)
    with _read_errors(path), _open(path) as im:
        width, height = im.size
        turned = _orientation(im, path) in (5, 6, 7, 8)
    return (width, height) if turned else (height, width)


def _quantised(values: np.ndarray) -> np.ndarray:
    return np.floor(np.clip(values, 0.0, 255.0) + 0.5).astype(np.uint8)


# ------------------------------------------------------------------ decoding


def _channels(im, path: Path, rawmodes: set[str], tiff: dict) -> tuple[np.ndarray, np.ndarray | None]:
    """Values ``(H, W, 1 or 3)`` on the 8-bit scale and alpha ``(H, W)`` in [0, 1] (or None)."""
    mode = im.mode
    key = im.info.get("transparency")
    if mode in ("P", "PA"):
        im = im.convert("RGBA" if key is not None or mode == "PA" else "RGB")
        mode, key = im.mode, None
    if any(";16" in r for r in rawmodes) and mode not in _GREY16:
        return _colour16(im, path, rawmodes, key)
    if mode == "1":
        grey = np.asarray(im.convert("L"), dtype=np.float64)[..., None]
        return grey, _keyed(grey[..., 0], None if key is None else (255 if key else 0))
    if mode == "L":
        grey = np.asarray(im, dtype=np.float64)[..., None]
        bits = _LOW_BIT_GREY.get(next(iter(rawmodes), ""))
        if key is not None and bits and key < 2 ** bits:
            key = key * 255 // (2 ** bits - 1)
        return grey, _keyed(grey[..., 0], key)
    if mode == "LA":
        la = np.asarray(im, dtype=np.float64)
        return la[..., :1], la[..., 1] / 255.0
    if mode in ("RGB", "RGBX"):
        rgb = np.asarray(im, dtype=np.float64)[..., :3]
        return rgb, _keyed(rgb, key)
    if mode == "RGBA":
        rgba = np.asarray(im, dtype=np.float64)
        return rgba[..., :3], rgba[..., 3] / 255.0
    if mode in ("CMYK", "YCbCr"):
        return np.asarray(im.convert("RGB"), dtype=np.float64), None
    if mode in _GREY16:
        v = np.asarray(im).astype(np.float64)
        if tiff.get("photometric") == 0:  # white is zero: Pillow does not invert 16-bit samples
            v = 65535.0 - v
        return (v / 257.0)[..., None], _keyed(v, key)
    if mode == "F":
        return _float_values(im, path, tiff), None
    if mode == "I":
        raise InputDataError(f"{path}: holds signed or 32-bit integer samples (mode I), which have no stated "
                             f"range to map to 0-255; save it as 8- or 16-bit unsigned or as float in [0, 1]")
    raise InputDataError(f"{path}: mode {mode} cannot be converted to RGB faithfully; save it as RGB or grey")


def _to_srgb(im, path: Path, rawmodes: set[str]):
    """``im`` with its embedded ICC colour profile applied, if that profile is not sRGB: converted to
    sRGB (relative colorimetric) for 8-bit grey, RGB, RGBA and CMYK; refused on other data."""
    icc = im.info.get("icc_profile")
    if not icc:
        return im
    from PIL import ImageCms

    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        name = ImageCms.getProfileDescription(profile).strip()
    except (OSError, ImageCms.PyCMSError) as exc:
        raise InputDataError(f"{path}: its embedded colour profile cannot be read ({exc}); remove the profile "
                             f"or convert the image to sRGB") from None
    if "srgb" in name.lower():
        return im
    deep = im.mode in (*_GREY16, "F", "I") or any(";16" in r for r in rawmodes)
    if deep or im.mode not in ("L", "RGB", "RGBA", "CMYK") or "transparency" in im.info:
        what = "16-bit or float samples" if deep else f"mode {im.mode}"
        raise InputDataError(f"{path}: its colour profile '{name}' cannot be applied to {what}; convert the "
                             f"image to sRGB")
    try:
        return ImageCms.profileToProfile(im, profile, ImageCms.createProfile("sRGB"),
                                         renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
                                         outputMode="RGBA" if im.mode == "RGBA" else "RGB")
    except ImageCms.PyCMSError as exc:
        raise InputDataError(f"{path}: its colour profile '{name}' cannot be applied ({exc}); convert the "
                             f"image to sRGB") from None


def _rawmode(args) -> str:
    """The raw mode of a decoder tile (how its bytes unpack into pixels), or "" for codecs without one."""
    if isinstance(args, str):
        return args
    if isinstance(args, tuple) and args and isinstance(args[0], str):
        return args[0]
    return ""


def _keyed(values: np.ndarray, key) -> np.ndarray | None:
    """Alpha of a PNG/GIF transparent colour: 0 where the (stored) value equals ``key``, else 1."""
    if key is None or isinstance(key, bytes):
        return None
    match = values == np.asarray(key, dtype=np.float64)
    if match.ndim == 3:
        match = match.all(axis=2)
    return np.where(match, 0.0, 1.0) if match.any() else None


def _float_values(im, path: Path, tiff: dict) -> np.ndarray:
    f = np.asarray(im, dtype=np.float64)
    if not np.isfinite(f).all():
        bad = int((~np.isfinite(f)).sum())
        raise InputDataError(f"{path}: {bad} float sample(s) are NaN or infinite; give finite values in [0, 1]")
    low, high = float(f.min()), float(f.max())
    if low < 0.0 or high > 1.0:
        raise InputDataError(f"{path}: float samples range over [{low:.6g}, {high:.6g}]; float images must "
                             f"hold values in [0, 1] (scale them, or save as 8- or 16-bit)")
    if tiff.get("photometric") == 0:
        raise InputDataError(f"{path}: a float image stored white-is-zero; save it black-is-zero")
    return (255.0 * f)[..., None]


def _colour16(im, path: Path, rawmodes: set[str], key) -> tuple[np.ndarray, np.ndarray | None]:
    """16-bit colour at full precision. Pillow keeps only each sample's high byte; decoding the
    file a second time with the byte order swapped yields the low bytes (PNG gray + alpha, which
    Pillow opens as RGBA: decoded once more with each byte of a pixel as one 8-bit sample)."""
    rawmode = next(iter(rawmodes))
    match = _COLOUR16.fullmatch(rawmode)
    if len(rawmodes) == 1 and rawmode == "LA;16B":
        b = _decode_as(im, path, "RGBA").astype(np.float64)
        grey, alpha = b[..., 0] * 256 + b[..., 1], b[..., 2] * 256 + b[..., 3]
        return (grey / 257.0)[..., None], alpha / 65535.0
    if len(rawmodes) != 1 or not match:
        raise InputDataError(f"{path}: 16-bit {im.mode} samples stored as {', '.join(sorted(rawmodes))} cannot "
                             f"be read at full precision; save the image as 8- or 16-bit RGB(A) or grey")
    base, order = match.groups()
    if order == "N":
        order = "L" if sys.byteorder == "little" else "B"
    high = np.asarray(im).astype(np.float64)
    low = _decode_as(im, path, f"{base};16{'B' if order == 'L' else 'L'}").astype(np.float64)
    v = high * 256 + low
    rgb = v[..., :3]
    alpha = v[..., 3] / 65535.0 if im.mode == "RGBA" else _keyed(rgb, key)
    return rgb / 257.0, alpha


def _open(path: Path):
    from PIL import Image

    Image.init()  # registers every plugin (Image.open alone knows only a few when given formats)
    return Image.open(path, formats=READ_FORMATS)


def _decode_as(im, path: Path, rawmode: str) -> np.ndarray:
    """Decode ``path`` again, unpacking its pixel data with ``rawmode`` instead of its own."""
    with _open(path) as again:
        again.tile = [t._replace(args=rawmode if isinstance(t.args, str) else (rawmode, *t.args[1:]))
                      for t in again.tile]
        again.load()
        if again.size != im.size:
            raise OSError("the second decoding differs in size")
        return np.asarray(again)


def _tiff_layout(im, path: Path) -> dict:
    """Refuse TIFF layouts Pillow opens but reads unfaithfully; returns the photometric code."""
    if im.format != "TIFF":
        return {}
    tags = im.tag_v2
    formats = tags.get(339, (1,))
    formats = set(formats if isinstance(formats, tuple) else (formats,))
    if 2 in formats:
        raise InputDataError(f"{path}: holds signed integer samples, which Pillow would read as unsigned; "
                             f"save it as unsigned 8- or 16-bit or as float in [0, 1]")
    samples = int(tags.get(277, 1))
    if samples > len(im.getbands()):
        raise InputDataError(f"{path}: holds {samples} samples per pixel; only grey or colour, each with an "
                             f"optional alpha channel, are read (mode {im.mode} would drop "
                             f"{samples - len(im.getbands())})")
    return {"photometric": tags.get(262)}


def _orientation(im, path: Path) -> int:
    """The EXIF orientation (1-8); none, or 0 (unknown), is upright."""
    value = im.getexif().get(0x0112)
    if value in (None, 0):
        return 1
    if isinstance(value, int) and value in _UPRIGHT:
        return value
    raise InputDataError(f"{path}: EXIF orientation {value!r} is not one of 1-8; fix or remove the tag")


def resize_values(values: np.ndarray, size: int) -> np.ndarray:
    """Bilinear, antialiased resizing of float values, channel by channel (Pillow's mode F)."""
    from PIL import Image

    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(values[..., c], dtype=np.float32))
                           .resize((size, size), Image.BILINEAR, reducing_gap=None), dtype=np.float64)
                for c in range(values.shape[2])]
    return np.stack(channels, axis=2)
