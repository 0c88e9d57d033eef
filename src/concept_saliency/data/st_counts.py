"""The files of a Spatial Transcriptomics release (Stahl et al. 2016), read faithfully.

- :func:`read_st_counts`: the count matrix (tab-separated, genes as columns, ``XxY`` spot
  positions as rows), its header read as written: a gene name given twice is refused or its
  counts summed (:func:`resolve_duplicate_genes`, the config's
  ``normalisation.duplicate_genes``), an empty name refused, each problem named by line,
  spot and gene;
- :func:`read_transformation`: the 3x3 alignment matrix from array positions to the pixels
  of the H&E image (:func:`read_image`).

A spot annotation is read by :mod:`.spot_annotation`.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputDataError

log = logging.getLogger(__name__)

_SPOT = re.compile(r"^\s*(-?\d+(?:\.\d+)?)x(-?\d+(?:\.\d+)?)\s*$")


def parse_spot(name: str, source: str = "") -> tuple[float, float]:
    m = _SPOT.match(str(name))
    if not m:
        raise InputDataError(
            f"{source}: spot '{name}' is not an array position of the form XxY (e.g. 16.92x9.015)"
        )
    return float(m.group(1)), float(m.group(2))


#: What to do with a gene name given to several columns (``normalisation.duplicate_genes``).
DUPLICATE_GENE_RULES = ("refuse", "sum")
#: Gene names that are missing values written as text; a hint when they appear twice.
_MISSING_AS_TEXT = {"nan", "NaN", "NA", "None", "null", "<NA>"}


@dataclass
class GeneMerge:
    """How the columns of a table map onto its distinct gene names (first appearance order).

    ``group[j]`` is the position among ``names`` of column ``j``; ``repeated`` maps each
    name given more than once to the positions (0-based) of all its columns."""

    names: list[str]
    group: np.ndarray
    repeated: dict[str, list[int]]

    def sum_columns(self, values):
        """Columns of ``values`` (spots x columns, dense or sparse) summed per name."""
        import scipy.sparse as sp

        if not self.repeated:
            return values
        plan = sp.csr_matrix((np.ones(len(self.group)), (np.arange(len(self.group)), self.group)),
                             shape=(len(self.group), len(self.names)))
        merged = values @ plan
        return sp.csr_matrix(merged) if sp.issparse(values) else np.asarray(merged)


def plan_gene_merge(names: list[str]) -> GeneMerge:
    """The distinct names of ``names`` (in order of first appearance) and where each column goes."""
    position: dict[str, int] = {}  # name -> its position among the distinct names
    columns: dict[str, list[int]] = {}  # name -> its columns
    for j, name in enumerate(names):
        position.setdefault(name, len(position))
        columns.setdefault(name, []).append(j)
    group = np.asarray([position[name] for name in names], dtype=np.int64)
    return GeneMerge(list(position), group, {n: c for n, c in columns.items() if len(c) > 1})


def resolve_duplicate_genes(names: list[str], rule: str, source: str, position) -> GeneMerge:
    """The plan for ``names``; with ``rule="refuse"`` a name given twice is an error naming both
    places (``position(i, j)`` says where columns ``i`` and ``j`` are, e.g. "columns 3 and 7");
    with ``rule="sum"`` a warning lists the merged names."""
    if rule not in DUPLICATE_GENE_RULES:
        raise ValueError(f"unknown duplicate_genes rule {rule!r}")
    merge = plan_gene_merge(names)
    if merge.repeated and rule == "refuse":
        name, where = next(iter(merge.repeated.items()))
        more = len(merge.repeated) - 1
        hint = " (a missing name written as text?)" if name in _MISSING_AS_TEXT else ""
        raise InputDataError(
            f"{source}: gene '{name}'{hint} is given twice ({position(where[0], where[1])})"
            + (f", and {more} more gene name{'s' if more > 1 else ''} too" if more else "")
            + "; set the dataset's 'normalisation.duplicate_genes: sum' to add their counts, or rename one")
    if merge.repeated:
        log.warning("%s: counts summed for %d gene name(s) given several times: %s", source,
                    len(merge.repeated), ", ".join(f"{n} ({len(w)}x)" for n, w in
                                                   list(merge.repeated.items())[:10]))
    return merge


def _read_header(path: Path) -> list[str]:
    """Line 1 of the count matrix as its raw fields (no renaming of repeated or empty names)."""
    import pandas as pd

    header = pd.read_csv(path, sep="\t", header=None, nrows=1, dtype=str, keep_default_na=False,
                         na_filter=False, skip_blank_lines=False)
    return [str(v) for v in header.iloc[0].tolist()]


def _read_body(path: Path):
    """Lines 2 on: the spot (column 1, text) and its counts (columns 2 on, numbered from 1)."""
    import pandas as pd

    return pd.read_csv(path, sep="\t", header=None, skiprows=1, index_col=0, dtype={0: str})


def _matrix_genes(header: list[str], body, path: Path):
    """The gene of every column of counts, from the header; ``body`` without a trailing empty
    column (every line ending in a tab). The header may or may not have the spot column's cell."""
    n_counts = body.shape[1]
    if len(header) == n_counts + 2 and not header[-1].strip():
        header = header[:-1]  # line 1 ends in a tab
        log.info("%s: line 1 ends in a tab; its empty last field is ignored", path)
    if n_counts > 1 and body.iloc[:, -1].isna().all() and (
            (len(header) == n_counts + 1 and not header[-1].strip())  # every line ends in a tab
            or (len(header) == n_counts and not header[0].strip())):  # the lines of counts do
        header = header[:-1] if len(header) == n_counts + 1 else header
        body = body.iloc[:, :-1]
        n_counts -= 1
        log.info("%s: the lines end in a tab; the empty last column is ignored", path)
    if len(header) == n_counts + 1:
        genes = header[1:]
    elif len(header) == n_counts:
        genes = header
    else:
        raise InputDataError(f"{path}: line 1 names {len(header)} columns but line 2 has "
                             f"{n_counts + 1} (a spot and {n_counts} counts); expected a header of "
                             f"gene names (after an empty first cell) and one line of counts per spot")
    genes = [g.strip() for g in genes]
    for j, gene in enumerate(genes):
        if not gene:
            raise InputDataError(f"{path}: line 1, column {j + 2}: the gene name is empty; "
                                 f"name every column of counts")
    return genes, body


def _looks_transposed(genes: list[str]) -> bool:
    """Most header names are ``XxY`` spot positions: genes are lines and spots columns."""
    return sum(1 for g in genes if _SPOT.match(g)) > max(1, len(genes) // 2)


def _check_spots(spots, genes: list[str], path: Path) -> None:
    """Every spot is an ``XxY`` position, given once (as text and as a position)."""
    import pandas as pd

    spots = pd.Index(spots)
    if spots.has_duplicates:
        spot = spots[spots.duplicated()][0]
        lines = [i + 2 for i in np.nonzero(spots == spot)[0][:2]]
        raise InputDataError(f"{path}: spot '{spot}' appears twice (lines {lines[0]} and {lines[1]}); "
                             f"keep one row per spot")
    seen: dict[tuple[float, float], int] = {}
    for i, spot in enumerate(spots):
        if not _SPOT.match(spot) and _looks_transposed(genes):
            raise InputDataError(
                f"{path}: the matrix looks transposed: line 1 holds spot positions (e.g. "
                f"'{next(g for g in genes if _SPOT.match(g))}') and line {i + 2} starts with '{spot}'; "
                f"expected spots (XxY) as lines and genes as columns: transpose it")
        try:
            xy = parse_spot(spot, str(path))
        except InputDataError as exc:
            raise InputDataError(str(exc).replace(f"{path}: ", f"{path}: line {i + 2}: ", 1)) from None
        if xy in seen:
            j = seen[xy]
            raise InputDataError(f"{path}: spots '{spots[j]}' (line {j + 2}) and '{spot}' (line {i + 2}) "
                                 f"are the same array position {xy[0]:g}x{xy[1]:g}; keep one row per spot")
        seen[xy] = i


def read_st_counts(path: str | os.PathLike, duplicate_genes: str = "refuse"):
    """Read a count matrix; returns a DataFrame (spots x genes) of integer counts.

    Every problem is reported with its line (line 1 is the header of gene names) and
    column (the spot is column 1, counts from column 2, as in the lines of counts), spot
    and gene: an empty gene name, a gene name given twice (``duplicate_genes="refuse"``;
    ``"sum"`` adds the columns' counts, listed in ``attrs["merged_genes"]``), a position
    that is not ``XxY``, a spot given twice (also as ``1x2`` and ``1.0x2.0``), a count that
    is not a non-negative integer (text, negative, fractional, NaN or infinite), a
    transposed matrix. The header is read as written (pandas would rename a repeated name
    ``Apoe.1`` and an empty one ``Unnamed: 3``); names are stripped of surrounding spaces
    and are case-sensitive (``Apoe`` and ``APOE`` are two genes). A tab at the end of every
    line (an empty last column) is ignored.
    """
    import pandas as pd

    path = Path(path)
    try:
        header = _read_header(path)
        try:
            body = _read_body(path)
        except pd.errors.EmptyDataError:
            raise InputDataError(f"{path}: the count matrix has no spots: line 1 names "
                                 f"{len(header)} columns and no line of counts follows") from None
    except pd.errors.EmptyDataError:
        raise InputDataError(f"{path}: the count matrix is empty; expected a header of gene names "
                             f"and one line of counts per spot") from None
    except pd.errors.ParserError as exc:
        fields = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if fields:
            want, line, saw = fields.groups()
            raise InputDataError(f"{path}: line {line} has {saw} tab-separated fields, line 2 has "
                                 f"{want}; every spot needs one count per gene") from None
        raise InputDataError(f"{path}: cannot read the count matrix "
                             f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    except (OSError, UnicodeDecodeError, EOFError, ValueError) as exc:
        raise InputDataError(f"{path}: cannot read the count matrix "
                             f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    genes, body = _matrix_genes(header, body, path)
    if body.empty:
        raise InputDataError(f"{path}: the count matrix has no spots or no genes "
                             f"({body.shape[0]} spots x {body.shape[1]} genes); expected tab-separated "
                             f"spots (XxY) x genes")
    body.index = body.index.astype(str)
    _check_spots(body.index, genes, path)
    body.columns = range(body.shape[1])
    df = body

    def where(mask) -> str:
        row, col = np.argwhere(np.asarray(mask))[0]
        value = df.iat[row, col]
        return (f"{path}: line {row + 2}, spot '{df.index[row]}', gene '{genes[col]}': "
                f"{repr(value) if isinstance(value, str) else value}")

    if all(pd.api.types.is_numeric_dtype(t) for t in df.dtypes):
        numeric = df
    else:  # some column holds text: say where
        numeric = df.apply(pd.to_numeric, errors="coerce")
        text = numeric.isna().to_numpy() & df.notna().to_numpy()
        if text.any():
            raise InputDataError(f"{where(text)} is not a number; counts must be non-negative integers")
    values = numeric.to_numpy(dtype=np.float64)
    for bad, what in ((~np.isfinite(values), "is missing, NaN or infinite"),
                      (values < 0, "is negative"),
                      (values != np.round(values), "is not an integer")):
        if bad.any():
            raise InputDataError(f"{where(bad)} {what}; counts must be non-negative integers "
                                 f"(raw counts, not normalised values)")
    if values.max() > np.iinfo(np.int32).max:
        raise InputDataError(f"{where(values > np.iinfo(np.int32).max)} is too large for a count")
    merge = resolve_duplicate_genes(genes, duplicate_genes, f"{path}: line 1",
                                    lambda a, b: f"columns {a + 2} and {b + 2}")
    values = merge.sum_columns(values)
    if values.max() > np.iinfo(np.int32).max:
        name = merge.names[int(np.argwhere(values > np.iinfo(np.int32).max)[0][1])]
        raise InputDataError(f"{path}: the summed counts of gene '{name}' are too large for a count")
    counts = pd.DataFrame(values.astype(np.int64), index=pd.Index(df.index, name=None), columns=merge.names)
    counts.attrs["merged_genes"] = {n: [j + 2 for j in w] for n, w in merge.repeated.items()}
    return counts


#: Spatial Transcriptomics arrays (Stahl et al. 2016): spots of 100 um, 200 um apart.
ST_SPOT_DIAMETER = 0.5  # in array units (one unit = the spot-to-spot distance)


def read_transformation(path: str | os.PathLike) -> np.ndarray:
    """The ST alignment matrix: 9 numbers (3x3, row by row) mapping ``[x, y, 1]`` to pixels.

    ``[px, py, 1] = [x, y, 1] @ M``; in the original release only elements 0, 4
    (scale) and 6, 7 (shift) are non-zero, and element 8 is 1. Refused: not 9 numbers, NaN or
    infinite, a last column other than ``0, 0, 1`` (a transposed or projective matrix, whose
    shift would be lost), a singular scale.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputDataError(f"{path}: cannot read the alignment matrix ({exc})") from None
    try:
        values = [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise InputDataError(f"{path}: the alignment matrix must be 9 numbers, found "
                             f"'{text.strip()[:60]}'") from None
    if len(values) != 9:
        raise InputDataError(f"{path}: the alignment matrix must be 9 numbers (3x3), found {len(values)}")
    m = np.asarray(values, dtype=np.float64).reshape(3, 3)
    if not np.isfinite(m).all():
        k = int(np.nonzero(~np.isfinite(m.ravel()))[0][0])
        raise InputDataError(f"{path}: number {k + 1} of the 9 of the alignment matrix is {values[k]}; "
                             f"all must be finite")
    if m[0, 2] != 0 or m[1, 2] != 0 or m[2, 2] != 1:
        raise InputDataError(
            f"{path}: the 3rd, 6th and 9th numbers of the alignment matrix are {m[0, 2]:g}, {m[1, 2]:g}, "
            f"{m[2, 2]:g}; they must be 0, 0, 1 ([x, y, 1] @ M: the shift is the 7th and 8th)"
            + ("; this one looks transposed" if m[2, 0] == 0 and m[2, 1] == 0 else ""))
    if abs(np.linalg.det(m[:2, :2])) < 1e-12:
        raise InputDataError(f"{path}: the alignment matrix is singular (scale 0)")
    return m


def array_to_pixels(xy: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``(n, 2)`` array coordinates -> image pixels ``(x, y)`` with the alignment matrix."""
    xy = np.asarray(xy, dtype=np.float64)
    return (np.hstack([xy, np.ones((len(xy), 1))]) @ matrix)[:, :2]


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An RGB image as ``uint8 (H, W, 3)``."""
    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = None  # H&E scans are large on purpose
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise InputDataError(f"{path}: cannot read the image ({exc})") from None
