"""Image inputs: a folder of images plus a table of binary attributes.

The table is CSV or TSV with a header; its first column names the image file
(relative to the folder), the other columns are attributes coded -1/1 (as in
CelebA) or 0/1. :func:`pack_image_folder` turns both into a sample store.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import InputDataError
from .samples import assign_split, create_sample_store

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def read_label_table(path: str | os.PathLike):
    """Read an attribute table; returns a DataFrame indexed by file name with bool columns."""
    import pandas as pd

    path = Path(path)
    sep = "," if path.suffix.lower() == ".csv" else "\t"
    try:
        table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)  # "" and "NA" as written
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputDataError(f"{path}: cannot read the attribute table ({exc})") from None
    if table.shape[1] < 2:
        raise InputDataError(
            f"{path}: expected a header row with an image column and at least one attribute "
            f"column, separated by {'commas' if sep == ',' else 'tabs'}"
        )
    table = table.set_index(table.columns[0])
    if table.index.has_duplicates:
        dup = table.index[table.index.duplicated()][0]
        raise InputDataError(f"{path}: image '{dup}' appears more than once; keep one row per image")
    out = {}
    for col in table.columns:
        values = table[col].str.strip()
        bad = ~values.isin(["-1", "1", "0"])
        if bad.any():
            row = values.index[bad.to_numpy().nonzero()[0][0]]
            raise InputDataError(
                f"{path}: column '{col}', image '{row}': value {values[row]!r} is not -1, 0 or 1"
            )
        out[col] = values == "1"
    return pd.DataFrame(out, index=table.index)


def load_image(path: str | os.PathLike, size: int | None) -> np.ndarray:
    """An RGB uint8 image, resized (bilinear, antialiased) to ``size`` x ``size`` if given."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if size is not None and im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR, reducing_gap=None)
            return np.asarray(im, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise InputDataError(f"{path}: cannot read the image ({exc})") from None
    except Image.DecompressionBombError as exc:  # not an OSError: would be a traceback
        raise InputDataError(f"{path}: refused: {exc}") from None


def pack_image_folder(image_dir: str | os.PathLike, labels_path: str | os.PathLike,
                      out_path: str | os.PathLike, image_size: int,
                      validation_fraction: float, seed: int,
                      attributes: Sequence[str] | None = None, block: int = 256) -> dict:
    """Pack the images named in the attribute table into ``out_path`` (a sample store).

    Images are streamed in blocks of ``block`` so memory does not grow with N.
    Returns a summary (counts) for the provenance record.
    """
    image_dir = Path(image_dir)
    table = read_label_table(labels_path)
    if attributes:
        unknown = [a for a in attributes if a not in table.columns]
        if unknown:
            raise InputDataError(
                f"{labels_path}: attribute(s) {', '.join(unknown)} not in the table; "
                f"it has {', '.join(table.columns)}"
            )
        table = table[list(attributes)]
    names = list(table.index)
    missing = [n for n in names if not (image_dir / n).is_file()]
    if missing:
        raise InputDataError(
            f"{image_dir}: {len(missing)} image(s) named in {labels_path} are missing, "
            f"e.g. '{missing[0]}'"
        )
    if not names:
        raise InputDataError(f"{labels_path}: the table lists no images")
    ids = [Path(n).stem for n in names]
    split = assign_split(len(names), validation_fraction, seed)
    with create_sample_store(out_path, len(names), (image_size, image_size, 3), np.uint8, ids,
                             split, labels=table.to_numpy(), label_names=list(table.columns),
                             attrs={"source": str(image_dir)}) as x:
        for start in range(0, len(names), block):
            chunk = names[start:start + block]
            x[start:start + len(chunk)] = np.stack([load_image(image_dir / n, image_size)
                                                   for n in chunk])
    return {"images": len(names), "attributes": list(table.columns)}
