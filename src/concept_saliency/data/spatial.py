"""Spatial transcriptomics: count matrices to AnnData, and genes as images on the spot grid.

In the paper's second experiment the *genes* are the samples and the tissue
spots are the features: every gene becomes a small image whose pixels are the
spots of the array, and the VAE is trained on those images.

- :func:`read_st_counts`: the original Spatial Transcriptomics count-matrix
  layout (tab-separated, genes as columns, ``XxY`` spot positions as rows).
- :func:`counts_to_anndata`: raw counts in ``layers["counts"]``, array
  coordinates in ``obs``, positions in ``obsm["spatial"]`` (scanpy/squidpy).
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
    """Read a count matrix; returns a DataFrame (spots x genes) of integer counts."""
    import pandas as pd

    path = Path(path)
    try:
        df = pd.read_csv(path, sep="\t", index_col=0)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError, EOFError) as exc:
        raise InputDataError(f"{path}: cannot read the count matrix ({exc})") from None
    if df.empty:
        raise InputDataError(f"{path}: the count matrix has no spots or no genes")
    df.index = df.index.astype(str)
    df.columns = df.columns.astype(str)
    if df.index.has_duplicates:
        raise InputDataError(f"{path}: spot '{df.index[df.index.duplicated()][0]}' appears twice")
    for spot in df.index:
        parse_spot(spot, str(path))
    values = df.to_numpy()
    if not np.issubdtype(values.dtype, np.number):
        bad_col = next(c for c in df.columns if not np.issubdtype(df[c].dtype, np.number))
        raise InputDataError(f"{path}: gene '{bad_col}' has non-numeric counts")
    if (values < 0).any():
        raise InputDataError(f"{path}: negative counts (e.g. gene '{df.columns[(values < 0).any(0)][0]}')")
    return df


def counts_to_anndata(counts, library_id: str = "section"):
    """AnnData with raw counts, array coordinates and spatial positions."""
    import anndata as ad

    xy = np.array([parse_spot(s) for s in counts.index])
    adata = ad.AnnData(X=counts.to_numpy(dtype=np.float32))
    adata.obs_names = list(counts.index)
    adata.var_names = list(counts.columns)
    adata.layers["counts"] = counts.to_numpy(dtype=np.int32)
    adata.obs["array_x"] = xy[:, 0]
    adata.obs["array_y"] = xy[:, 1]
    adata.obs["array_col"] = np.round(xy[:, 0]).astype(int)
    adata.obs["array_row"] = np.round(xy[:, 1]).astype(int)
    adata.obsm["spatial"] = xy.copy()
    adata.uns["csm_library_id"] = library_id
    return adata


def normalise(adata, method: str = "scale", min_spots: int = 1, min_counts: int = 1):
    """Filter spots and genes, then scale every gene to [0, 1] (in ``X``).

    ``method``: ``"scale"`` (the paper: raw counts, min-max per gene) or
    ``"log1p-scale"`` (``normalize_total`` + ``log1p``, then min-max per gene).
    Returns the filtered AnnData and a summary of what was removed.
    """
    import scanpy as sc

    counts = adata.layers["counts"]
    spot_ok = counts.sum(axis=1) >= min_counts
    adata = adata[spot_ok].copy()
    gene_ok = (adata.layers["counts"] > 0).sum(axis=0) >= max(1, min_spots)
    adata = adata[:, gene_ok].copy()
    removed = {"spots_removed": int((~spot_ok).sum()), "genes_removed": int((~gene_ok).sum()),
               "spots": adata.n_obs, "genes": adata.n_vars}
    log.info("normalise: removed %(spots_removed)d spots and %(genes_removed)d genes; "
             "%(spots)d spots x %(genes)d genes remain", removed)
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise InputDataError("no spots or genes left after filtering; lower min_counts/min_spots")
    adata.X = adata.layers["counts"].astype(np.float32)
    if method == "log1p-scale":
        sc.pp.normalize_total(adata, target_sum=1e4)
        sc.pp.log1p(adata)
    elif method != "scale":
        raise ValueError(f"unknown normalisation {method!r}")
    x = np.asarray(adata.X, dtype=np.float32)
    lo, hi = x.min(axis=0), x.max(axis=0)
    adata.X = (x - lo) / np.where(hi > lo, hi - lo, 1.0)
    adata.uns["csm_normalisation"] = {"method": method, "min_spots": min_spots,
                                      "min_counts": min_counts}
    return adata, removed


def write_anndata(adata, path: str | os.PathLike) -> None:
    adata.uns["csm_format"] = ANN_FORMAT
    adata.uns["csm_format_version"] = FORMATS[ANN_FORMAT]
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp)


def read_anndata(path: str | os.PathLike, require_format: bool = True):
    import anndata as ad

    from ..artifacts import _check_format

    try:
        adata = ad.read_h5ad(path)
    except (OSError, KeyError, ValueError) as exc:
        raise InputDataError(f"{path}: not a readable .h5ad file ({exc})") from None
    if require_format:
        _check_format(adata.uns.get("csm_format"), adata.uns.get("csm_format_version"),
                      ANN_FORMAT, Path(path))
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


def grid_index(adata, grid_size: int | str = "auto", multiple: int = 8) -> GridIndex:
    """Spot -> pixel: rounded array coordinates, centred on a square grid.

    ``grid_size="auto"``: the smallest power of two (at least ``multiple``)
    that holds the array. Two spots on one pixel are an error.
    """
    col = adata.obs["array_col"].to_numpy()
    row = adata.obs["array_row"].to_numpy()
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
    """A TSV (spot, region) -> the region of each spot in ``spots`` ('' where unannotated)."""
    import pandas as pd

    table = pd.read_csv(path, sep="\t", dtype=str)
    if table.shape[1] < 2:
        raise InputDataError(f"{path}: expected two tab-separated columns: spot, region")
    lookup = dict(zip(table.iloc[:, 0].str.strip(), table.iloc[:, 1].str.strip()))
    return [lookup.get(s, "") for s in spots]
