"""The spot grid: where every spot of a spatial dataset sits on the gene images.

:func:`grid_index` places the array positions (``obs["array_row"]``, ``obs["array_col"]``)
on a square grid (halving the columns of hexagonal arrays so that neighbouring spots stay
neighbouring pixels), :func:`genes_to_images` makes every gene an image on it and
:func:`pixels_to_spots` brings a map on the grid back to the spots. ``grid.h5`` (format
``csm.spatial-grid``) is written by :func:`write_grid` and read by :func:`read_grid`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..artifacts import create_h5, open_h5
from ..errors import InputDataError

log = logging.getLogger(__name__)

GRID_FORMAT = "csm.spatial-grid"


@dataclass
class GridIndex:
    """Where every spot sits on the image grid."""

    spots: list[str]
    row: np.ndarray  # (spots,) pixel row
    col: np.ndarray  # (spots,) pixel column
    shape: tuple[int, int]  # (H, W)

    def tissue_mask(self) -> np.ndarray:
        """``(H, W)``: True on the grid pixels that hold a spot."""
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


def is_hexagonal(row: np.ndarray, col: np.ndarray) -> bool:
    """Visium's numbering of a hexagonal array: ``row + col`` even for every spot, both parities
    of column present (odd rows hold the odd columns)."""
    return len(col) > 1 and bool(np.all((row + col) % 2 == 0)) and len(np.unique(col % 2)) == 2


def grid_positions(adata, hexagonal: bool | str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """``(row, col)``: each spot's position on the grid before centring: ``array_row`` and
    ``array_col``, the columns of a hexagonal array halved (``col // 2``, see :func:`grid_index`)."""
    col = adata.obs["array_col"].to_numpy().astype(np.int64)
    row = adata.obs["array_row"].to_numpy().astype(np.int64)
    if hexagonal == "auto":
        hexagonal = is_hexagonal(row, col)
    return row, (col // 2 if hexagonal else col)


def grid_extent(adata, hexagonal: bool | str = "auto") -> int:
    """Pixels across the spot array on the grid (rows or columns, the larger)."""
    return _extent(*grid_positions(adata, hexagonal))


def grid_index(adata, grid_size: int | str = "auto", multiple: int = 8,
               hexagonal: bool | str = "auto", max_grid: int = MAX_GRID, source: str = "") -> GridIndex:
    """Spot -> pixel: the array positions (``obs["array_row"]``, ``obs["array_col"]``),
    centred on a square grid.

    ``grid_size="auto"``: the smallest power of two (at least ``multiple``)
    that holds the array (32 for the MOB arrays, 128 for a whole Visium array).
    ``hexagonal``: Visium's hexagonal arrays number columns so that ``row + col`` is
    always even (even rows hold the even columns, odd rows the odd ones); a spot
    goes to pixel column ``col // 2``, its row staying its row (``"auto"``: when every
    spot has an even ``row + col``, :func:`is_hexagonal`). The pixel grid is then the
    "odd-r" offset layout of the hexagonal lattice: the two neighbours of a spot in
    its row are the pixels left and right of it, its four neighbours in the rows above
    and below are the pixels straight above/below and one to the left (even rows) or
    right (odd rows), so every neighbouring spot is a neighbouring pixel and no two
    spots share one. Two spots on one pixel are an error. A grid larger than
    ``max_grid`` (automatic or given) is refused, naming the spots far from the others
    when a few of them make it so large (one mistyped position would otherwise make
    gigabytes of mostly empty images).
    """
    row, col = grid_positions(adata, hexagonal)
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


def pixels_to_spots(maps: np.ndarray, index: GridIndex) -> np.ndarray:
    """``(N, H, W[, C])`` maps on the grid -> ``(N, spots)`` (channels summed)."""
    maps = np.asarray(maps)
    if maps.ndim == 4:
        maps = maps.sum(axis=-1)
    return maps[:, index.row, index.col]


def concept_spot_map(spot_maps: np.ndarray, indices: np.ndarray, positives: np.ndarray) -> np.ndarray:
    """A concept's map on the spots: the mean of the spot maps (:func:`pixels_to_spots`) of its
    explained genes (the samples ``indices``) that are members of its group (``positives``: a
    mask over every gene), or of all explained genes when none is a member."""
    member = np.asarray(positives, dtype=bool)[np.asarray(indices)]
    rows = member if member.any() else np.ones(len(member), dtype=bool)
    return spot_maps[rows].mean(axis=0)


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
