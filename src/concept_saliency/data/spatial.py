"""Spatial transcriptomics: count matrices to AnnData, and genes as images on the spot grid.

In the paper's second experiment the *genes* are the samples and the tissue
spots are the features: every gene becomes a small image whose pixels are the
spots of the array, and the VAE is trained on those images.

- :func:`read_st_counts`: the original Spatial Transcriptomics count-matrix
  layout (tab-separated, genes as columns, ``XxY`` spot positions as rows).
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

from ..artifacts import FORMATS, atomic_path, create_h5, open_h5
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


def read_st_counts(path: str | os.PathLike):
    """Read a count matrix; returns a DataFrame (spots x genes) of integer counts.

    Every problem is reported with its line (line 1 is the header of gene names), spot
    and gene: a position that is not ``XxY``, a spot given twice, a count that is not a
    non-negative integer (text, negative, fractional, NaN or infinite).
    """
    import pandas as pd

    path = Path(path)
    try:
        df = pd.read_csv(path, sep="\t", index_col=0)
    except pd.errors.EmptyDataError:
        raise InputDataError(f"{path}: the count matrix is empty; expected a header of gene names "
                             f"and one line of counts per spot") from None
    except (OSError, pd.errors.ParserError, UnicodeDecodeError, EOFError, ValueError) as exc:
        raise InputDataError(f"{path}: cannot read the count matrix "
                             f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if df.empty:
        raise InputDataError(f"{path}: the count matrix has no spots or no genes "
                             f"({df.shape[0]} spots x {df.shape[1]} genes); expected tab-separated "
                             f"spots (XxY) x genes")
    df.index = df.index.astype(str)
    df.columns = df.columns.astype(str)
    if df.index.has_duplicates:
        spot = df.index[df.index.duplicated()][0]
        lines = [i + 2 for i in np.nonzero(df.index == spot)[0][:2]]
        raise InputDataError(f"{path}: spot '{spot}' appears twice (lines {lines[0]} and {lines[1]}); "
                             f"keep one row per spot")
    for i, spot in enumerate(df.index):
        try:
            parse_spot(spot, str(path))
        except InputDataError as exc:
            raise InputDataError(str(exc).replace(f"{path}: ", f"{path}: line {i + 2}: ", 1)) from None

    def where(mask) -> str:
        row, col = np.argwhere(np.asarray(mask))[0]
        value = df.iat[row, col]
        return (f"{path}: line {row + 2}, spot '{df.index[row]}', gene '{df.columns[col]}': "
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
    return numeric.astype(np.int64)


#: Spatial Transcriptomics arrays (Stahl et al. 2016): spots of 100 um, 200 um apart.
ST_SPOT_DIAMETER = 0.5  # in array units (one unit = the spot-to-spot distance)
HIRES_MAX, LOWRES_MAX = 2000, 600  # longest side of the stored images, as Space Ranger's


def read_transformation(path: str | os.PathLike) -> np.ndarray:
    """The ST alignment matrix: 9 numbers (3x3, row by row) mapping ``[x, y, 1]`` to pixels.

    ``[px, py, 1] = [x, y, 1] @ M``; in the original release only elements 0, 4
    (scale) and 6, 7 (shift) are non-zero.
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
    return adata


def read_user_anndata(path: str | os.PathLike, counts_layer: str | None = None,
                      region_key: str | None = None, library_id: str | None = None):
    """An existing ``.h5ad`` (Visium via scanpy/squidpy, or any spot x gene AnnData).

    Raw counts from ``layers[counts_layer]`` (``"X"`` for ``X``; by default
    ``layers["counts"]`` when present, else ``X``); array positions from
    ``obs["array_row"]``/``obs["array_col"]`` (or ``XxY`` spot names);
    ``obsm["spatial"]`` and ``uns["spatial"][library_id]`` are kept as they are.
    """
    import anndata as ad
    import scipy.sparse as sp

    path = Path(path)
    try:
        user = ad.read_h5ad(path)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise InputDataError(f"{path}: not a readable .h5ad file ({exc})") from None
    if user.n_obs == 0 or user.n_vars == 0:
        raise InputDataError(f"{path}: the AnnData has no spots or no genes")
    if counts_layer is None:
        counts_layer = "counts" if "counts" in user.layers else "X"
    if counts_layer == "X":
        counts = user.X
    elif counts_layer in user.layers:
        counts = user.layers[counts_layer]
    else:
        raise InputDataError(f"{path}: no layer '{counts_layer}' (layers: "
                             f"{', '.join(user.layers) or 'none'}); set 'counts_layer' to the raw counts, or X")
    values = counts.data if sp.issparse(counts) else np.asarray(counts)
    if values.size and not np.isfinite(values).all():
        raise InputDataError(f"{path}: {'X' if counts_layer == 'X' else 'layers[' + repr(counts_layer) + ']'} "
                             f"holds NaN or infinite values; give raw counts (set 'counts_layer')")
    if values.size and (np.any(values < 0) or not np.allclose(values, np.round(values))):
        raise InputDataError(f"{path}: {'X' if counts_layer == 'X' else 'layers[' + repr(counts_layer) + ']'} "
                             f"does not hold raw counts (negative or non-integer values); set "
                             f"'counts_layer' to the layer with raw counts")
    counts = sp.csr_matrix(counts, dtype=np.float32) if sp.issparse(counts) else np.asarray(counts, np.float32)
    obs = user.obs.copy()
    if {"array_row", "array_col"} <= set(obs.columns):
        obs["array_row"] = obs["array_row"].astype(int)
        obs["array_col"] = obs["array_col"].astype(int)
    else:
        try:
            xy = np.array([parse_spot(s) for s in user.obs_names])
        except InputDataError:
            raise InputDataError(f"{path}: no spot positions: give obs['array_row'] and obs['array_col'] "
                                 f"(as Visium data have), or name the spots XxY") from None
        obs["array_x"], obs["array_y"] = xy[:, 0], xy[:, 1]
        obs["array_col"], obs["array_row"] = np.round(xy[:, 0]).astype(int), np.round(xy[:, 1]).astype(int)
    if region_key is not None and region_key not in obs:
        raise InputDataError(f"{path}: no obs column '{region_key}' for 'region_key' (obs columns: "
                             f"{', '.join(map(str, obs.columns))})")
    adata = ad.AnnData(X=counts.copy(), obs=obs, var=user.var.copy())
    adata.layers["counts"] = counts
    if adata.var_names.has_duplicates:
        n = int(adata.var_names.duplicated().sum())
        adata.var_names_make_unique()
        log.warning("%s: %d duplicate gene names made unique (name-1, name-2, ...)", path, n)
    spatial_uns = user.uns.get("spatial") or {}
    if library_id is None and len(spatial_uns) > 1:
        raise InputDataError(f"{path}: uns['spatial'] holds several libraries "
                             f"({', '.join(spatial_uns)}); choose one with 'library_id'")
    if library_id is not None and spatial_uns and library_id not in spatial_uns:
        raise InputDataError(f"{path}: no library '{library_id}' in uns['spatial'] "
                             f"({', '.join(spatial_uns)})")
    if "spatial" in user.obsm:
        adata.obsm["spatial"] = np.asarray(user.obsm["spatial"], dtype=np.float64)
    else:
        adata.obsm["spatial"] = np.stack([obs["array_col"], obs["array_row"]], axis=1).astype(float)
    if spatial_uns:
        library_id = library_id or next(iter(spatial_uns))
        adata.uns["spatial"] = {library_id: spatial_uns[library_id]}
        adata.uns["csm_library_id"] = library_id
    else:
        set_tissue_image(adata, library_id or path.stem, None, ST_SPOT_DIAMETER, str(path))
    if region_key is not None:
        adata.uns["csm_region_key"] = region_key
    return adata


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
        raise InputDataError(
            f"{source + ': ' if source else ''}no {'spots' if adata.n_obs == 0 else 'genes'} left after "
            f"filtering ({removed['spots_removed']} spots with fewer than {min_counts} counts, "
            f"{removed['genes_removed']} genes detected in fewer than {max(1, min_spots)} spots "
            f"removed); lower the dataset's normalisation.min_counts / min_spots, or check the counts")
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


def write_anndata(adata, path: str | os.PathLike, fmt: str = ANN_FORMAT) -> None:
    adata.uns["csm_format"] = fmt
    adata.uns["csm_format_version"] = FORMATS[fmt]
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp)


def read_anndata(path: str | os.PathLike, require_format: bool = True, fmt: str = ANN_FORMAT):
    import anndata as ad

    from ..artifacts import _check_format

    try:
        adata = ad.read_h5ad(path)
    except (OSError, KeyError, ValueError) as exc:
        raise InputDataError(f"{path}: not a readable .h5ad file ({exc})") from None
    if require_format:
        _check_format(adata.uns.get("csm_format"), adata.uns.get("csm_format_version"),
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


def grid_index(adata, grid_size: int | str = "auto", multiple: int = 8,
               hexagonal: bool | str = "auto") -> GridIndex:
    """Spot -> pixel: the array positions (``obs["array_row"]``, ``obs["array_col"]``),
    centred on a square grid.

    ``grid_size="auto"``: the smallest power of two (at least ``multiple``)
    that holds the array (32 for the MOB arrays). ``hexagonal``: Visium's
    hexagonal arrays number columns so that ``row + col`` is always even; their
    columns are halved so that neighbouring spots are neighbouring pixels
    (``"auto"``: when every spot has an even ``row + col``). Two spots on one
    pixel are an error.
    """
    col = adata.obs["array_col"].to_numpy().astype(np.int64)
    row = adata.obs["array_row"].to_numpy().astype(np.int64)
    if hexagonal == "auto":
        hexagonal = len(col) > 1 and bool(np.all((row + col) % 2 == 0)) and len(np.unique(col % 2)) == 2
    if hexagonal:
        col = col // 2
    extent = max(col.max() - col.min(), row.max() - row.min()) + 1
    if grid_size == "auto":
        size = multiple
        while size < extent:
            size *= 2
    else:
        size = int(grid_size)
        if size < extent:
            raise InputDataError(
                f"grid_size {size} is smaller than the spot array ({extent} spots across); "
                f"raise 'grid_size' or use 'auto'"
            )
    if size % multiple:
        raise InputDataError(f"grid_size {size} is not a multiple of {multiple}, which the model's strides need")
    r = row - row.min() + (size - (row.max() - row.min() + 1)) // 2
    c = col - col.min() + (size - (col.max() - col.min() + 1)) // 2
    flat = r * size + c
    if len(np.unique(flat)) != len(flat):
        dup = np.nonzero(np.bincount(flat) > 1)[0][0]
        spots = [s for s, f in zip(adata.obs_names, flat) if f == dup]
        raise InputDataError(f"spots {', '.join(spots)} fall on the same grid position; "
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
    ('' where unannotated). Spots are matched by name, or by their ``XxY`` position."""
    import pandas as pd

    try:
        table = pd.read_csv(path, sep="\t", dtype=str, header=None, comment=None).fillna("")
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputDataError(f"{path}: cannot read the spot annotation ({exc})") from None
    if table.shape[1] < 2:
        raise InputDataError(f"{path}: expected two tab-separated columns: spot, region")
    names = table.iloc[:, 0].str.strip()
    regions = table.iloc[:, 1].str.strip()

    def position(name):
        m = _SPOT.match(name)
        return (round(float(m.group(1)), 2), round(float(m.group(2)), 2)) if m else None

    known = set(spots)
    if names.iloc[0] not in known and position(names.iloc[0]) is None:
        names, regions = names.iloc[1:], regions.iloc[1:]  # a header line
    by_name = dict(zip(names, regions))
    by_pos = {position(n): r for n, r in zip(names, regions) if position(n) is not None}
    out = [by_name.get(s, by_pos.get(position(s), "")) for s in spots]
    n_found = sum(1 for r in out if r)
    if n_found == 0:
        raise InputDataError(f"{path}: none of its {len(names)} spots (e.g. '{names.iloc[0]}') is a "
                             f"spot of the count matrix (e.g. '{spots[0]}')")
    log.info("%s: %d of %d spots annotated with %d regions", path, n_found, len(spots),
             len({r for r in out if r}))
    return out
