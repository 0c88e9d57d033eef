"""Spatial transcriptomics: count matrices to AnnData, and genes as images on the spot grid.

In the paper's second experiment the *genes* are the samples and the tissue
spots are the features: every gene becomes a small image whose pixels are the
spots of the array, and the VAE is trained on those images.

- :func:`read_st_counts`: the original Spatial Transcriptomics count-matrix
  layout (tab-separated, genes as columns, ``XxY`` spot positions as rows), its
  header read as written: a gene name given twice is refused or its counts
  summed (``normalisation.duplicate_genes``), as in :func:`read_user_anndata`.
- :func:`counts_to_anndata`: raw counts in ``layers["counts"]``, array
  coordinates in ``obs``, positions in ``obsm["spatial"]`` (scanpy/squidpy):
  image pixels when the alignment matrix is given (:func:`read_transformation`),
  with the H&E image and its scale factors under ``uns["spatial"][library_id]``
  so that ``scanpy.pl.spatial`` draws the spots on it.
- :func:`read_user_anndata`: an existing ``.h5ad`` (e.g. Visium read by
  scanpy or squidpy) brought to the same layout.
- :func:`normalise`: gene and spot filters, then per-gene scaling to [0, 1].
- :func:`grid_index` / :func:`genes_to_images`: the spot -> pixel map and the
  gene images; :func:`pixels_to_spots` maps a map on the grid back to spots.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..artifacts import FORMATS, atomic_path, check_format, create_h5, open_h5
from ..errors import InputDataError

log = logging.getLogger(__name__)

ANN_FORMAT = "csm.anndata"
GRID_FORMAT = "csm.spatial-grid"
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
HIRES_MAX, LOWRES_MAX = 2000, 600  # longest side of the stored images, as Space Ranger's


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


def _downscale(image: np.ndarray, longest: int) -> tuple[np.ndarray, float]:
    from PIL import Image

    scale = min(1.0, longest / max(image.shape[:2]))
    if scale == 1.0:
        return image, 1.0
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS)), scale


def set_tissue_image(adata, library_id: str, image: np.ndarray | None, spot_diameter: float,
                     source: str = "") -> None:
    """``uns["spatial"][library_id]``: the image (``hires`` and ``lowres``) and scale factors.

    ``obsm["spatial"]`` must hold full-resolution pixel coordinates of ``image``
    (or array coordinates when there is no image); ``spot_diameter`` is in those units.
    """
    entry = {"images": {}, "scalefactors": {"spot_diameter_fullres": float(spot_diameter)},
             "metadata": {"source": source}}
    if image is not None:
        for key, longest in (("hires", HIRES_MAX), ("lowres", LOWRES_MAX)):
            entry["images"][key], scale = _downscale(image, longest)
            entry["scalefactors"][f"tissue_{key}_scalef"] = float(scale)
    adata.uns["spatial"] = {library_id: entry}
    adata.uns["csm_library_id"] = library_id


def counts_to_anndata(counts, library_id: str = "section", transformation: np.ndarray | None = None,
                      image: np.ndarray | None = None):
    """AnnData with raw counts, array coordinates and spatial positions.

    ``obs``: ``array_x``/``array_y`` (the spot's ``XxY`` position) and their rounded
    ``array_col``/``array_row``. ``obsm["spatial"]``: image pixels when the alignment
    matrix is given, else the array coordinates. ``uns["spatial"][library_id]``:
    the image, when given, and the scale factors.
    """
    import anndata as ad

    if image is not None and transformation is None:
        raise InputDataError("an H&E image needs the alignment matrix ('transformation') that "
                             "places the spots on it")
    xy = np.array([parse_spot(s) for s in counts.index])
    adata = ad.AnnData(X=counts.to_numpy(dtype=np.float32))
    adata.obs_names = list(counts.index)
    adata.var_names = list(counts.columns)
    adata.layers["counts"] = counts.to_numpy(dtype=np.int32)
    adata.obs["array_x"] = xy[:, 0]
    adata.obs["array_y"] = xy[:, 1]
    adata.obs["array_col"] = np.round(xy[:, 0]).astype(int)
    adata.obs["array_row"] = np.round(xy[:, 1]).astype(int)
    if transformation is not None:
        adata.obsm["spatial"] = array_to_pixels(xy, transformation)
        diameter = ST_SPOT_DIAMETER * np.sqrt(abs(np.linalg.det(transformation[:2, :2])))
    else:
        adata.obsm["spatial"] = xy.copy()
        diameter = ST_SPOT_DIAMETER
    set_tissue_image(adata, library_id, image, diameter, "Spatial Transcriptomics count matrix")
    record_merged_genes(adata, {name: f"columns {', '.join(map(str, columns))}"
                                for name, columns in (counts.attrs.get("merged_genes") or {}).items()})
    return adata


def record_merged_genes(adata, merged: dict[str, str]) -> None:
    """``uns["csm_merged_genes"]``: every gene whose counts were summed, and from where."""
    if merged:
        adata.uns["csm_merged_genes"] = {"gene": np.asarray(list(merged), dtype=str),
                                         "from": np.asarray(list(merged.values()), dtype=str)}


def read_user_anndata(path: str | os.PathLike, counts_layer: str | None = None,
                      region_key: str | None = None, library_id: str | None = None,
                      duplicate_genes: str = "refuse"):
    """An existing ``.h5ad`` (Visium via scanpy/squidpy, or any spot x gene AnnData).

    Raw counts from ``layers[counts_layer]`` (``"X"`` for ``X``; by default
    ``layers["counts"]`` when present, else ``X``); array positions from
    ``obs["array_row"]``/``obs["array_col"]`` (integers; or ``XxY`` spot names);
    ``obsm["spatial"]`` (``n x 2`` finite numbers) and ``uns["spatial"][library_id]`` (images
    as arrays, positive finite scale factors) are kept as they are; in ``obs[region_key]`` a
    missing value means unannotated (``''``), not a region called ``nan``.
    Gene names given twice are refused, or their counts summed (``duplicate_genes="sum"``);
    empty names and spot names given twice are refused. Every refusal is one
    :class:`InputDataError` naming the file and the key.
    """
    import anndata as ad

    path = Path(path)
    try:
        user = ad.read_h5ad(path)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise InputDataError(f"{path}: not a readable .h5ad file ({exc})") from None
    if user.n_obs == 0 or user.n_vars == 0:
        raise InputDataError(f"{path}: the AnnData has no spots or no genes")
    _check_obs_names(user.obs_names, path)
    genes = [str(g) for g in user.var_names]
    for j, gene in enumerate(genes):
        if not gene.strip():
            raise InputDataError(f"{path}: var_names[{j}] is {gene!r}: every gene needs a name")
    merge = resolve_duplicate_genes(genes, duplicate_genes, str(path),
                                    lambda a, b: f"var_names[{a}] and var_names[{b}]")
    counts = _user_counts(user, counts_layer, path)
    obs = user.obs.copy()
    for column, values in _user_positions(user, path).items():
        obs[column] = values
    if region_key is not None:
        if region_key not in obs:
            raise InputDataError(f"{path}: no obs column '{region_key}' for 'region_key' (obs columns: "
                                 f"{', '.join(map(str, obs.columns))})")
        obs[region_key] = region_labels(obs[region_key])
    spatial_uns = _user_library(user.uns, library_id, path)
    counts = merge.sum_columns(counts)
    var = user.var.iloc[np.unique(merge.group, return_index=True)[1]].copy()  # a merged gene's first row
    var.index = merge.names
    adata = ad.AnnData(X=counts.copy(), obs=obs, var=var)
    adata.layers["counts"] = counts
    record_merged_genes(adata, {n: "var_names[" + ", ".join(map(str, w)) + "]"
                                for n, w in merge.repeated.items()})
    if "spatial" in user.obsm:
        adata.obsm["spatial"] = _user_spatial_coords(user, path)
    else:
        adata.obsm["spatial"] = np.stack([obs["array_col"], obs["array_row"]], axis=1).astype(float)
    if spatial_uns:
        library_id, entry = spatial_uns
        adata.uns["spatial"] = {library_id: entry}
        adata.uns["csm_library_id"] = library_id
    else:
        set_tissue_image(adata, library_id or path.stem, None, ST_SPOT_DIAMETER, str(path))
    if region_key is not None:
        adata.uns["csm_region_key"] = region_key
    return adata


def _check_obs_names(names, path: Path) -> None:
    if names.has_duplicates:
        spot = names[names.duplicated()][0]
        first, second = np.nonzero(names == spot)[0][:2]
        raise InputDataError(f"{path}: spot '{spot}' is given twice (obs_names[{first}] and "
                             f"obs_names[{second}]); one section per dataset, one row per spot "
                             f"(several sections joined? choose one)")


def _user_counts(user, counts_layer: str | None, path: Path):
    """The raw counts (float32, sparse stays sparse): finite, non-negative integers."""
    import scipy.sparse as sp

    if counts_layer is None:
        counts_layer = "counts" if "counts" in user.layers else "X"
    if counts_layer == "X":
        counts = user.X
    elif counts_layer in user.layers:
        counts = user.layers[counts_layer]
    else:
        raise InputDataError(f"{path}: no layer '{counts_layer}' (layers: "
                             f"{', '.join(user.layers) or 'none'}); set 'counts_layer' to the raw counts, or X")
    key = "X" if counts_layer == "X" else f"layers[{counts_layer!r}]"
    values = counts.data if sp.issparse(counts) else np.asarray(counts)
    if values.dtype.kind not in "biuf":
        raise InputDataError(f"{path}: {key} holds {values.dtype} values, not numbers; give raw counts "
                             f"(set 'counts_layer')")
    if values.size and not np.isfinite(values).all():
        raise InputDataError(f"{path}: {key} holds NaN or infinite values; give raw counts (set 'counts_layer')")
    if values.size and (np.any(values < 0) or not np.allclose(values, np.round(values))):
        raise InputDataError(f"{path}: {key} does not hold raw counts (negative or non-integer values); set "
                             f"'counts_layer' to the layer with raw counts")
    return sp.csr_matrix(counts, dtype=np.float32) if sp.issparse(counts) else np.asarray(counts, np.float32)


def _user_positions(user, path: Path) -> dict[str, np.ndarray]:
    """``array_row`` and ``array_col`` as integers: from ``obs`` (whole numbers, or text of whole
    numbers), or from ``XxY`` spot names when ``obs`` has neither column (then with ``array_x``
    and ``array_y``, the positions as written)."""
    import pandas as pd

    present = [k for k in ("array_row", "array_col") if k in user.obs]
    if len(present) == 1:
        missing = ({"array_row", "array_col"} - set(present)).pop()
        raise InputDataError(f"{path}: obs has '{present[0]}' but no '{missing}'; give both array "
                             f"positions of every spot")
    if not present:
        try:
            xy = np.array([parse_spot(s) for s in user.obs_names])
        except InputDataError:
            raise InputDataError(f"{path}: no spot positions: give obs['array_row'] and obs['array_col'] "
                                 f"(as Visium data have), or name the spots XxY") from None
        return {"array_x": xy[:, 0], "array_y": xy[:, 1], "array_col": np.round(xy[:, 0]).astype(np.int64),
                "array_row": np.round(xy[:, 1]).astype(np.int64)}
    out = {}
    for key in ("array_row", "array_col"):
        column = user.obs[key]
        raw = np.asarray(column.astype(object) if isinstance(column.dtype, pd.CategoricalDtype) else column)
        if raw.dtype.kind == "b":
            raise InputDataError(f"{path}: obs['{key}'] holds true/false values, not array positions")
        numbers = pd.to_numeric(pd.Series(raw), errors="coerce").to_numpy(dtype=np.float64)
        for bad, what in ((pd.isna(pd.Series(raw)).to_numpy(), "is missing (NaN)"),
                          (~np.isfinite(numbers), "is not a finite number"),
                          (numbers != np.round(numbers), "is not a whole number")):
            if bad.any():
                i = int(np.nonzero(bad)[0][0])
                value = raw[i].item() if isinstance(raw[i], np.generic) else raw[i]
                raise InputDataError(f"{path}: obs['{key}'] of spot '{user.obs_names[i]}' {what} "
                                     f"({value!r}); array positions are the integer row and column of "
                                     f"every spot (as Visium's)")
        out[key] = numbers.astype(np.int64)
    return out


def _user_spatial_coords(user, path: Path) -> np.ndarray:
    """``obsm["spatial"]`` as ``(n, 2)`` float64: two columns of finite numbers."""
    coords = np.asarray(user.obsm["spatial"])
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise InputDataError(f"{path}: obsm['spatial'] has shape {coords.shape}; expected "
                             f"({user.n_obs}, 2): the x and y pixel position of every spot")
    try:  # numbers, or text of numbers
        if coords.dtype.kind not in "iufOSU":
            raise TypeError
        coords = coords.astype(np.float64)
    except (TypeError, ValueError):
        raise InputDataError(f"{path}: obsm['spatial'] holds {coords.dtype} values, not numbers; "
                             f"expected the x and y pixel position of every spot") from None
    if not np.isfinite(coords).all():
        i = int(np.nonzero(~np.isfinite(coords).all(axis=1))[0][0])
        raise InputDataError(f"{path}: obsm['spatial'] of spot '{user.obs_names[i]}' is {list(coords[i])}; "
                             f"every spot needs a finite pixel position")
    return coords


def _user_library(uns, library_id: str | None, path: Path):
    """``(library_id, entry)`` of ``uns["spatial"]``, checked; ``None`` when there is none.

    An entry may have ``images`` (name -> ``(H, W[, 3 or 4])`` numeric array) and
    ``scalefactors`` (name -> positive finite number; ``tissue_<image>_scalef`` for each of
    ``hires``/``lowres``), as ``scanpy.read_visium`` writes them."""
    from collections.abc import Mapping

    spatial_uns = uns.get("spatial")
    if spatial_uns is None:
        return None
    if not isinstance(spatial_uns, Mapping):
        raise InputDataError(f"{path}: uns['spatial'] is a {type(spatial_uns).__name__}, not a mapping of "
                             f"library ids to {{images, scalefactors}} (as scanpy.read_visium writes); "
                             f"fix or delete it")
    if not spatial_uns:
        return None
    if library_id is None and len(spatial_uns) > 1:
        raise InputDataError(f"{path}: uns['spatial'] holds several libraries "
                             f"({', '.join(spatial_uns)}); choose one with 'library_id'")
    if library_id is not None and library_id not in spatial_uns:
        raise InputDataError(f"{path}: no library '{library_id}' in uns['spatial'] "
                             f"({', '.join(spatial_uns)})")
    library_id = library_id or next(iter(spatial_uns))
    entry = spatial_uns[library_id]
    key = f"uns['spatial'][{library_id!r}]"
    if not isinstance(entry, Mapping):
        raise InputDataError(f"{path}: {key} is a {type(entry).__name__}, not a mapping with "
                             f"'images' and 'scalefactors'")
    images, scalefactors = entry.get("images", {}), entry.get("scalefactors", {})
    for part, value in (("images", images), ("scalefactors", scalefactors)):
        if not isinstance(value, Mapping):
            raise InputDataError(f"{path}: {key}['{part}'] is a {type(value).__name__}, not a mapping")
    for name, value in scalefactors.items():
        number = np.asarray(value)
        if number.ndim != 0 or number.dtype.kind not in "iuf" or not np.isfinite(number) or number <= 0:
            raise InputDataError(f"{path}: {key}['scalefactors']['{name}'] is {value!r}; "
                                 f"a scale factor is a positive number")
    for name, image in images.items():
        if not isinstance(image, np.ndarray) or image.dtype.kind not in "uif" or image.size == 0 \
                or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4))):
            what = (f"an array of shape {image.shape} and type {image.dtype}" if isinstance(image, np.ndarray)
                    else f"a {type(image).__name__}")
            raise InputDataError(f"{path}: {key}['images']['{name}'] is {what}; expected an image "
                                 f"array (H, W) or (H, W, 3 or 4)")
        if name in ("hires", "lowres") and f"tissue_{name}_scalef" not in scalefactors:
            raise InputDataError(f"{path}: {key}['images']['{name}'] has no scale factor: give "
                                 f"{key}['scalefactors']['tissue_{name}_scalef'] (its size over the "
                                 f"full-resolution image), or delete the image")
    return library_id, entry


def region_labels(values) -> list[str]:
    """A region annotation as text, ``''`` where a spot is unannotated (NaN, None, empty);
    whole numbers stored as floats (cluster ids beside NaN) are written without '.0'."""
    import pandas as pd

    out = []
    for value in values:
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            out.append("")
        elif isinstance(value, (float, np.floating)) and float(value).is_integer():
            out.append(str(int(value)))
        else:
            out.append(str(value).strip())
    return out


def normalise(adata, method: str = "scale", min_spots: int = 1, min_counts: int = 1,
              source: str = ""):
    """Filter spots and genes, then scale every gene to [0, 1] (in ``X``, dense float32).

    Spots with fewer than ``min_counts`` counts go first, then genes detected
    (count > 0) in fewer than ``min_spots`` of the remaining spots.
    ``method``: ``"scale"`` (the paper: raw counts, min-max per gene) or
    ``"log1p-scale"`` (``normalize_total`` + ``log1p``, then min-max per gene).
    Raw counts stay in ``layers["counts"]``. Returns the filtered AnnData and a
    summary of what was removed (also logged).
    """
    import scanpy as sc
    import scipy.sparse as sp

    if method not in ("scale", "log1p-scale"):
        raise ValueError(f"unknown normalisation {method!r}")
    counts = adata.layers["counts"]
    spot_ok = np.asarray(counts.sum(axis=1)).ravel() >= min_counts
    adata = adata[spot_ok].copy()
    gene_ok = np.asarray((adata.layers["counts"] > 0).sum(axis=0)).ravel() >= max(1, min_spots)
    adata = adata[:, gene_ok].copy()
    removed = {"spots_removed": int((~spot_ok).sum()), "genes_removed": int((~gene_ok).sum()),
               "spots": adata.n_obs, "genes": adata.n_vars}
    log.info("normalise: removed %(spots_removed)d spots with fewer than %(min_counts)d counts and "
             "%(genes_removed)d genes detected in fewer than %(min_spots)d spots; "
             "%(spots)d spots x %(genes)d genes remain",
             removed | {"min_counts": min_counts, "min_spots": min_spots})
    if adata.n_obs == 0 or adata.n_vars == 0:
        beyond = (f"; min_spots {min_spots} is more than the {adata.n_obs} spots left"
                  if adata.n_obs and min_spots > adata.n_obs else "")
        raise InputDataError(
            f"{source + ': ' if source else ''}no {'spots' if adata.n_obs == 0 else 'genes'} left after "
            f"filtering ({removed['spots_removed']} spots with fewer than {min_counts} counts, "
            f"{removed['genes_removed']} genes detected in fewer than {max(1, min_spots)} spots "
            f"removed{beyond}); lower the dataset's normalisation.min_counts / min_spots, or check the counts")
    c = adata.layers["counts"]
    adata.X = (c.toarray() if sp.issparse(c) else np.asarray(c)).astype(np.float32)
    if method == "log1p-scale":
        sc.pp.normalize_total(adata, target_sum=1e4)
        sc.pp.log1p(adata)
    x = np.asarray(adata.X, dtype=np.float32)
    lo, hi = x.min(axis=0), x.max(axis=0)
    adata.X = (x - lo) / np.where(hi > lo, hi - lo, 1.0)
    adata.uns["csm_normalisation"] = {"method": method, "min_spots": min_spots,
                                      "min_counts": min_counts, **removed}
    return adata, removed


def normalisation_note(adata) -> str:
    """``" (left after the normalisation removed 3271 genes detected in fewer than 10 spots ...)"``
    from a prepared AnnData's record, for messages about gene counts; ``""`` when none were removed."""
    record = adata.uns.get("csm_normalisation") or {}
    try:
        removed, min_spots = int(record["genes_removed"]), int(record["min_spots"])
    except (KeyError, TypeError, ValueError):
        return ""
    return (f" (left after the normalisation removed {removed} genes detected in fewer than {min_spots} "
            f"spots: normalisation.min_spots)" if removed else "")


def write_anndata(adata, path: str | os.PathLike, fmt: str = ANN_FORMAT) -> None:
    adata.uns["csm_format"] = fmt
    adata.uns["csm_format_version"] = FORMATS[fmt]
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp)


def read_anndata(path: str | os.PathLike, require_format: bool = True, fmt: str = ANN_FORMAT):
    import anndata as ad

    try:
        adata = ad.read_h5ad(path)
    except (OSError, KeyError, ValueError) as exc:
        raise InputDataError(f"{path}: not a readable .h5ad file ({exc})") from None
    if require_format:
        check_format(adata.uns.get("csm_format"), adata.uns.get("csm_format_version"),
                      fmt, Path(path))
    return adata


# ---------------------------------------------------------------- the spot grid


@dataclass
class GridIndex:
    """Where every spot sits on the image grid."""

    spots: list[str]
    row: np.ndarray  # (spots,) pixel row
    col: np.ndarray  # (spots,) pixel column
    shape: tuple[int, int]  # (H, W)

    def tissue_mask(self) -> np.ndarray:
        mask = np.zeros(self.shape, dtype=bool)
        mask[self.row, self.col] = True
        return mask


#: The largest grid by default (``max_grid``): Visium's 78 x 128 hexagonal array needs 128.
MAX_GRID = 256


def _auto_size(extent: int, multiple: int) -> int:
    """The smallest power of two times ``multiple`` that holds ``extent`` pixels."""
    size = multiple
    while size < extent:
        size *= 2
    return size


def _extent(row: np.ndarray, col: np.ndarray) -> int:
    return int(max(col.max() - col.min(), row.max() - row.min()) + 1)


def _outlying_spots(row: np.ndarray, col: np.ndarray, fits, at_most: int = 5) -> list[int]:
    """The few spots (at most ``at_most``) farthest from the median position without which the
    array ``fits``; ``[]`` when no such few spots stand out (the array itself is that large)."""
    keep = np.ones(len(row), dtype=bool)
    removed: list[int] = []
    while not fits(_extent(row[keep], col[keep])):
        if len(removed) == at_most or keep.sum() <= 2:
            return []
        distance = np.maximum(np.abs(row - np.median(row[keep])), np.abs(col - np.median(col[keep])))
        distance[~keep] = -1
        removed.append(int(np.argmax(distance)))
        keep[removed[-1]] = False
    return removed


def _far_spots(adata, row, col, fits) -> str:
    """``"spot 'a' (array row 1, col 2000) lies far from the others (...)"``, or ``""``."""
    far = _outlying_spots(row, col, fits)
    if not far:
        return ""
    keep = np.ones(len(row), dtype=bool)
    keep[far] = False
    many = len(far) > 1
    spots = ", ".join(f"'{adata.obs_names[i]}' (array row {int(adata.obs['array_row'].iloc[i])}, "
                      f"col {int(adata.obs['array_col'].iloc[i])})" for i in far)
    return (f"spot{'s' if many else ''} {spots} lie{'' if many else 's'} far from the others (without "
            f"{'them' if many else 'it'} the array is {_extent(row[keep], col[keep])} across): correct or "
            f"remove {'them' if many else 'it'}")


def grid_index(adata, grid_size: int | str = "auto", multiple: int = 8,
               hexagonal: bool | str = "auto", max_grid: int = MAX_GRID, source: str = "") -> GridIndex:
    """Spot -> pixel: the array positions (``obs["array_row"]``, ``obs["array_col"]``),
    centred on a square grid.

    ``grid_size="auto"``: the smallest power of two (at least ``multiple``)
    that holds the array (32 for the MOB arrays). ``hexagonal``: Visium's
    hexagonal arrays number columns so that ``row + col`` is always even; their
    columns are halved so that neighbouring spots are neighbouring pixels
    (``"auto"``: when every spot has an even ``row + col``). Two spots on one
    pixel are an error. A grid larger than ``max_grid`` (automatic or given) is refused,
    naming the spots far from the others when a few of them make it so large (one
    mistyped position would otherwise make gigabytes of mostly empty images).
    """
    col = adata.obs["array_col"].to_numpy().astype(np.int64)
    row = adata.obs["array_row"].to_numpy().astype(np.int64)
    if hexagonal == "auto":
        hexagonal = len(col) > 1 and bool(np.all((row + col) % 2 == 0)) and len(np.unique(col % 2)) == 2
    if hexagonal:
        col = col // 2
    extent = _extent(row, col)
    prefix = f"{source}: " if source else ""
    if grid_size == "auto":
        size = _auto_size(extent, multiple)
        if size > max_grid:
            far = _far_spots(adata, row, col, lambda e: _auto_size(e, multiple) <= max_grid)
            raise InputDataError(
                f"{prefix}the spot array is {extent} positions across: a {size}x{size} grid "
                f"({adata.n_vars * size * size * 4 / 1e9:.2g} GB of images for {adata.n_vars} genes) exceeds "
                f"max_grid {max_grid}; " + (f"{far}, or raise the dataset's 'max_grid'" if far else
                                            "no few spots stand out: raise the dataset's 'max_grid'"))
    else:
        size = int(grid_size)
        if size > max_grid:
            raise InputDataError(f"{prefix}grid_size {size} exceeds max_grid {max_grid} "
                                 f"({adata.n_vars * size * size * 4 / 1e9:.2g} GB of images for "
                                 f"{adata.n_vars} genes); raise the dataset's 'max_grid' too if you mean it")
        if size < extent:
            far = _far_spots(adata, row, col, lambda e: e <= size)
            raise InputDataError(f"{prefix}grid_size {size} is smaller than the spot array ({extent} spots "
                                 f"across); " + (f"{far}, or " if far else "")
                                 + "raise 'grid_size' or use 'auto'")
    if size % multiple:
        raise InputDataError(f"grid_size {size} is not a multiple of {multiple}, which the model's strides need")
    r = row - row.min() + (size - (row.max() - row.min() + 1)) // 2
    c = col - col.min() + (size - (col.max() - col.min() + 1)) // 2
    flat = r * size + c
    if len(np.unique(flat)) != len(flat):
        dup = np.nonzero(np.bincount(flat) > 1)[0][0]
        spots = [s for s, f in zip(adata.obs_names, flat) if f == dup]
        raise InputDataError(f"{prefix}spots {', '.join(spots)} fall on the same grid position; "
                             f"check the spot coordinates")
    return GridIndex(list(adata.obs_names), r.astype(np.int32), c.astype(np.int32), (size, size))


def genes_to_images(adata, index: GridIndex) -> np.ndarray:
    """``(genes, H, W, 1)`` float32: each gene's normalised expression on the grid."""
    x = np.asarray(adata.X, dtype=np.float32)  # spots x genes
    images = np.zeros((adata.n_vars, *index.shape, 1), dtype=np.float32)
    images[:, index.row, index.col, 0] = x.T
    return images


def map_key(concept: str, what: str) -> str:
    """Column of ``obs`` (and key of ``obsm``) with ``what`` (a saliency method, or "decoded")
    of a concept, in the AnnData of the spatial_maps stage."""
    return f"csm_{concept}_{what}"


def pixels_to_spots(maps: np.ndarray, index: GridIndex) -> np.ndarray:
    """``(N, H, W[, C])`` maps on the grid -> ``(N, spots)`` (channels summed)."""
    maps = np.asarray(maps)
    if maps.ndim == 4:
        maps = maps.sum(axis=-1)
    return maps[:, index.row, index.col]


def write_grid(path, index: GridIndex, regions: list[str] | None = None) -> None:
    import h5py

    with create_h5(path, GRID_FORMAT) as f:
        f.create_dataset("spots", data=np.asarray(index.spots, dtype=object), dtype=h5py.string_dtype())
        f.create_dataset("row", data=index.row)
        f.create_dataset("col", data=index.col)
        f.attrs["shape"] = index.shape
        if regions is not None:
            f.create_dataset("region", data=np.asarray(regions, dtype=object), dtype=h5py.string_dtype())


def read_grid(path) -> tuple[GridIndex, list[str] | None]:
    with open_h5(path, GRID_FORMAT) as f:
        dec = lambda a: [s.decode() if isinstance(s, bytes) else s for s in a]  # noqa: E731
        index = GridIndex(dec(f["spots"][()]), f["row"][()], f["col"][()],
                          tuple(int(v) for v in f.attrs["shape"]))
        regions = dec(f["region"][()]) if "region" in f else None
    return index, regions


def read_spot_annotation(path: str | os.PathLike, spots: list[str]) -> list[str]:
    """A TSV (spot, region; a header line is optional) -> the region of each spot in ``spots``
    ('' where unannotated). Spots are matched by name, or by their ``XxY`` position.

    Refused: no spot of the annotation among ``spots``, and a spot given twice (by name or
    position) with two different regions (the same region twice is accepted)."""
    import pandas as pd

    try:
        table = pd.read_csv(path, sep="\t", dtype=str, header=None, comment=None).fillna("")
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputDataError(f"{path}: cannot read the spot annotation ({exc})") from None
    if table.shape[1] < 2:
        raise InputDataError(f"{path}: expected two tab-separated columns: spot, region")
    names = table.iloc[:, 0].str.strip()
    regions = table.iloc[:, 1].str.strip()
    lines = np.arange(1, len(table) + 1)

    def position(name):
        m = _SPOT.match(name)
        return (round(float(m.group(1)), 2), round(float(m.group(2)), 2)) if m else None

    known = set(spots)
    if names.iloc[0] not in known and position(names.iloc[0]) is None:
        names, regions, lines = names.iloc[1:], regions.iloc[1:], lines[1:]  # a header line
    by_name: dict[str, str] = {}
    by_pos: dict[tuple, str] = {}
    first_line: dict[object, tuple[int, str]] = {}  # name or position -> (line, spot) where first given
    for name, region, line in zip(names, regions, lines):
        for table_, key in ((by_name, name), (by_pos, position(name))):
            if key is None:
                continue
            if key in table_ and table_[key] != region:
                earlier_line, earlier_name = first_line[key]
                same = "the same spot" if earlier_name == name else f"spot '{earlier_name}' (the same position)"
                raise InputDataError(f"{path}: line {line} gives spot '{name}' region '{region}', line "
                                     f"{earlier_line} gave {same} region '{table_[key]}'; give every "
                                     f"spot one region")
            table_.setdefault(key, region)
            first_line.setdefault(key, (int(line), name))
    out = [by_name.get(s, by_pos.get(position(s), "")) for s in spots]
    n_found = sum(1 for r in out if r)
    if n_found == 0:
        raise InputDataError(f"{path}: none of its {len(names)} spots (e.g. '{names.iloc[0]}') is a "
                             f"spot of the count matrix (e.g. '{spots[0]}')")
    log.info("%s: %d of %d spots annotated with %d regions", path, n_found, len(spots),
             len({r for r in out if r}))
    return out
