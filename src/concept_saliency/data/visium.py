"""10x Visium straight from Space Ranger's ``outs`` folder, in scanpy's spatial layout.

:func:`read_visium` reads the files :mod:`concept_saliency.sources` resolves by role:

- ``matrix``: the feature-barcode matrix in 10x HDF5 (``filtered_feature_bc_matrix.h5``, or
  ``raw_feature_bc_matrix.h5``), read by scanpy's :func:`scanpy.read_10x_h5` (gene expression
  features only) after its layout is checked here;
- ``positions``: ``spatial/tissue_positions.csv`` (Space Ranger 2 and later, with a header) or
  ``tissue_positions_list.csv`` (Space Ranger 1, without one; told apart by content, not by
  name): ``barcode, in_tissue, array_row, array_col, pxl_row_in_fullres, pxl_col_in_fullres``;
- ``scalefactors``: ``spatial/scalefactors_json.json``; ``hires_image``, ``lowres_image``: the
  tissue images (optional).

The result is what ``scanpy.read_visium`` gives for the same folder: ``obs`` ``in_tissue``,
``array_row``, ``array_col``; ``obsm["spatial"]`` the full-resolution pixel position of each
spot's centre as ``(x, y)`` = ``(pxl_col_in_fullres, pxl_row_in_fullres)`` (scanpy's reader gets
the same numbers by naming Space Ranger's two pixel columns the other way round);
``uns["spatial"][library_id]`` with ``images`` (``hires``, ``lowres``, as ``uint8`` RGB) and
``scalefactors``, so ``scanpy.pl.spatial`` draws the spots on the H&E; plus raw counts in
``layers["counts"]``. Every problem is one :class:`InputDataError` naming the file.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np

from ..errors import InputDataError
from .spatial import record_merged_genes
from .st_counts import resolve_duplicate_genes

log = logging.getLogger(__name__)

#: The columns of Space Ranger's positions file, in its order (documented by 10x Genomics).
POSITION_COLUMNS = ("barcode", "in_tissue", "array_row", "array_col", "pxl_row_in_fullres",
                    "pxl_col_in_fullres")
#: What a 10x HDF5 feature-barcode matrix holds (format version 2: Cell Ranger 3+, Space Ranger).
MATRIX_DATASETS = ("barcodes", "data", "indices", "indptr", "shape", "features/id", "features/name",
                   "features/feature_type")


def _text(value) -> str:
    if isinstance(value, np.ndarray):
        value = value.ravel()[0] if value.size else ""
    return value.decode() if isinstance(value, bytes) else str(value)


def matrix_metadata(path: str | os.PathLike) -> dict[str, str]:
    """``library_id`` (the first of ``library_ids``), ``chemistry_description`` and
    ``software_version`` from the matrix file's attributes, where present."""
    import h5py

    with h5py.File(path, "r") as f:
        attrs = dict(f.attrs)
    out = {k: _text(attrs[k]) for k in ("chemistry_description", "software_version") if k in attrs}
    if "library_ids" in attrs and np.size(attrs["library_ids"]):
        out["library_id"] = _text(attrs["library_ids"])
    return out


def _check_matrix_file(path: Path) -> None:
    """The file is HDF5 holding a 10x feature-barcode matrix whose parts agree in size."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InputDataError(f"{path}: not an HDF5 file ({str(exc).splitlines()[0]}); expected Space "
                             f"Ranger's feature-barcode matrix (10x HDF5)") from None
    with f:
        missing = [name for name in MATRIX_DATASETS if not isinstance(f.get(f"matrix/{name}"), h5py.Dataset)]
        if missing:
            what = ("has no group 'matrix'" if "matrix" not in f else
                    f"has no {', '.join('matrix/' + m for m in missing)}")
            raise InputDataError(f"{path}: {what}: not a 10x feature-barcode matrix (as Space Ranger "
                                 f"writes filtered_feature_bc_matrix.h5)")
        m = f["matrix"]
        shape = m["shape"][()]
        n_barcodes, n_features = len(m["barcodes"]), len(m["features/name"])
        problems = []
        if np.shape(shape) != (2,) or tuple(int(v) for v in shape) != (n_features, n_barcodes):
            problems.append(f"matrix/shape is {np.ravel(shape).tolist()}, not [{n_features} features, "
                            f"{n_barcodes} barcodes]")
        if len(m["indptr"]) != n_barcodes + 1:
            problems.append(f"matrix/indptr has {len(m['indptr'])} entries for {n_barcodes} barcodes")
        if len(m["data"]) != len(m["indices"]):
            problems.append(f"matrix/data has {len(m['data'])} values but matrix/indices {len(m['indices'])}")
        if not problems and len(m["indptr"]) and int(m["indptr"][-1]) != len(m["data"]):
            problems.append(f"matrix/indptr ends at {int(m['indptr'][-1])}, not at the {len(m['data'])} values")
        if problems:
            raise InputDataError(f"{path}: {problems[0]}: the matrix is inconsistent (truncated or "
                                 f"written by hand?)")
        data = m["data"]
        if data.dtype.kind not in "iuf":
            raise InputDataError(f"{path}: matrix/data holds {data.dtype} values, not counts")
        values = data[()]
        if values.size and data.dtype.kind in "if" and values.min() < 0:
            raise InputDataError(f"{path}: matrix/data holds negative values; expected raw counts")
        if values.size and data.dtype.kind == "f" and (not np.isfinite(values).all()
                                                       or not np.array_equal(values, np.round(values))):
            raise InputDataError(f"{path}: matrix/data holds values that are not whole numbers; expected "
                                 f"raw counts")
        indices = m["indices"][()]
        if indices.size and (indices.min() < 0 or indices.max() >= n_features):
            raise InputDataError(f"{path}: matrix/indices points beyond the {n_features} features")


def read_matrix(path: str | os.PathLike):
    """The gene expression features of a 10x HDF5 matrix (scanpy's reader): barcodes x genes,
    raw counts as float32 (sparse), ``var`` with ``gene_ids``, ``feature_types``, ``genome``."""
    import scanpy as sc

    path = Path(path)
    _check_matrix_file(path)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="(Variable|Observation) names are not unique")
            adata = sc.read_10x_h5(path)
    except (OSError, KeyError, ValueError, TypeError, IndexError) as exc:
        raise InputDataError(f"{path}: cannot read the 10x matrix ({str(exc).splitlines()[0]})") from None
    if adata.n_vars == 0:
        raise InputDataError(f"{path}: no 'Gene Expression' features (matrix/features/feature_type)")
    if adata.n_obs == 0:
        raise InputDataError(f"{path}: the matrix has no barcodes (spots)")
    if adata.obs_names.has_duplicates:
        spot = adata.obs_names[adata.obs_names.duplicated()][0]
        raise InputDataError(f"{path}: barcode '{spot}' is given twice in matrix/barcodes")
    adata.X = adata.X.astype(np.float32)
    return adata


def _header_line(first: list[str]) -> bool:
    """Line 1 is a header (Space Ranger 2+) rather than a spot (Space Ranger 1): its fields after
    the barcode are not numbers."""
    def number(text):
        try:
            float(text)
        except ValueError:
            return False
        return True
    return not any(number(v) for v in first[1:])


def read_positions(path: str | os.PathLike):
    """Space Ranger's positions file as a DataFrame indexed by barcode, with ``in_tissue`` (bool),
    ``array_row``, ``array_col`` (int) and ``pxl_row_in_fullres``, ``pxl_col_in_fullres`` (float).

    A header line is read when there is one (Space Ranger 2+), whatever the file's name; its
    columns are found by name (in any order). A byte-order mark, Windows line ends and spaces
    after the commas are harmless. Refused, naming the line: other columns than Space Ranger's,
    values that are not numbers (positions: whole numbers; ``in_tissue``: 0 or 1; pixels:
    finite), a barcode given twice.
    """
    import pandas as pd

    path = Path(path)
    try:
        table = pd.read_csv(path, header=None, dtype=str, keep_default_na=False, skipinitialspace=True,
                            encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise InputDataError(f"{path}: the positions file is empty") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InputDataError(f"{path}: cannot read the positions ({str(exc).splitlines()[0]}); expected "
                             f"Space Ranger's CSV: {', '.join(POSITION_COLUMNS)}") from None
    table = table.apply(lambda c: c.str.strip())
    first_line = 1
    if _header_line(list(table.iloc[0])):
        names = list(table.iloc[0])
        missing = [c for c in POSITION_COLUMNS if c not in names]
        if missing:
            raise InputDataError(f"{path}: line 1 names the columns {', '.join(names)}; Space Ranger's "
                                 f"are {', '.join(POSITION_COLUMNS)} (missing: {', '.join(missing)})")
        table = table.iloc[1:]
        table.columns = names
        table = table[list(POSITION_COLUMNS)]
        first_line = 2
    elif table.shape[1] != len(POSITION_COLUMNS):
        raise InputDataError(f"{path}: {table.shape[1]} columns; Space Ranger's positions have "
                             f"{len(POSITION_COLUMNS)}: {', '.join(POSITION_COLUMNS)}")
    else:
        table.columns = list(POSITION_COLUMNS)
    if table.empty:
        raise InputDataError(f"{path}: no spots, only a header line")
    lines = np.arange(first_line, first_line + len(table))
    out = pd.DataFrame(index=pd.Index(table["barcode"].to_numpy(), name=None))
    for column in POSITION_COLUMNS[1:]:
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)
        whole = column != "pxl_row_in_fullres" and column != "pxl_col_in_fullres"
        bad = ~np.isfinite(values)
        if whole:
            bad |= values != np.round(values)
        if column == "in_tissue":
            bad |= ~np.isin(values, (0, 1))
        if bad.any():
            i = int(np.nonzero(bad)[0][0])
            want = {"in_tissue": "0 or 1"}.get(column, "a whole number" if whole else "a finite number")
            raise InputDataError(f"{path}: line {lines[i]}, spot '{table['barcode'].iloc[i]}': {column} is "
                                 f"{table[column].iloc[i]!r}, not {want}")
        out[column] = values.astype(bool) if column == "in_tissue" else values.astype(np.int64) if whole \
            else values
    if out.index.has_duplicates:
        spot = out.index[out.index.duplicated()][0]
        where = lines[np.nonzero(out.index == spot)[0][:2]]
        raise InputDataError(f"{path}: spot '{spot}' is given twice (lines {where[0]} and {where[1]})")
    return out


def read_scalefactors(path: str | os.PathLike, images: tuple[str, ...] = ()) -> dict[str, float]:
    """``scalefactors_json.json``: ``spot_diameter_fullres`` and ``tissue_<image>_scalef`` for each
    of ``images`` must be positive numbers; other numbers are kept, other entries dropped."""
    path = Path(path)
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputDataError(f"{path}: cannot read the scale factors ({exc})") from None
    except json.JSONDecodeError as exc:
        raise InputDataError(f"{path}: not JSON ({exc}); expected Space Ranger's scale factors") from None
    if not isinstance(values, dict):
        raise InputDataError(f"{path}: holds a JSON {type(values).__name__}, not an object of scale factors")
    numbers = {k: float(v) for k, v in values.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) and v > 0}
    dropped = sorted(set(values) - set(numbers))
    for key in ("spot_diameter_fullres", *(f"tissue_{name}_scalef" for name in images)):
        if key not in numbers:
            found = f"is {values[key]!r}" if key in values else "is missing"
            raise InputDataError(f"{path}: '{key}' {found}; it must be a positive number (Space Ranger "
                                 f"writes it)")
    if dropped:
        log.info("%s: entries that are not positive numbers left out: %s", path, ", ".join(dropped))
    return numbers


def read_visium(matrix: str | os.PathLike, positions: str | os.PathLike, scalefactors: str | os.PathLike,
                hires_image: str | os.PathLike | None = None, lowres_image: str | os.PathLike | None = None,
                library_id: str | None = None, default_library_id: str = "section",
                in_tissue_only: bool = True, duplicate_genes: str = "sum"):
    """A Space Ranger output as AnnData in scanpy's layout (see the module docstring).

    ``library_id``: the key under ``uns["spatial"]``; by default the matrix file's library id
    (as scanpy's reader), else ``default_library_id``. ``in_tissue_only``: keep the spots the
    positions mark under the tissue (a raw matrix holds every spot of the slide). Gene symbols
    given to several features (10x references name a few distinct Ensembl genes alike) are
    refused, or their counts summed (``duplicate_genes="sum"``: ``var["gene_ids"]`` lists their
    ids, ``uns["csm_merged_genes"]`` records them). Refused: a barcode of the matrix that the
    positions lack, no spot left under the tissue, and every problem of a file (one
    :class:`InputDataError` naming it).
    """
    from .images import load_image

    matrix, positions = Path(matrix), Path(positions)
    adata = read_matrix(matrix)
    meta = matrix_metadata(matrix)
    table = read_positions(positions)
    unplaced = ~adata.obs_names.isin(table.index)
    if unplaced.any():
        raise InputDataError(
            f"{positions}: has no line for {int(unplaced.sum())} of the {adata.n_obs} barcodes of {matrix} "
            f"(e.g. '{adata.obs_names[unplaced][0]}'); the positions and the matrix must come from one "
            f"Space Ranger run")
    table = table.loc[adata.obs_names]
    genes = [str(g) for g in adata.var_names]
    ids = adata.var["gene_ids"].astype(str).tolist()
    merge = resolve_duplicate_genes(genes, duplicate_genes, str(matrix),
                                    lambda a, b: f"features {ids[a]} and {ids[b]}")
    adata = _merged(adata, merge, ids)
    outside = ~table["in_tissue"].to_numpy()
    if in_tissue_only and outside.any():
        log.info("%s: %d of %d spots lie outside the tissue (in_tissue 0 in %s): left out",
                 matrix, int(outside.sum()), adata.n_obs, positions)
        if outside.all():
            raise InputDataError(f"{positions}: none of the {adata.n_obs} spots of {matrix} is under the "
                                 f"tissue (in_tissue 1); set 'in_tissue_only: false' to keep them all")
        adata, table = adata[~outside].copy(), table[~outside]
    adata.obs["in_tissue"] = table["in_tissue"].astype(np.int64).to_numpy()
    adata.obs["array_row"] = table["array_row"].to_numpy()
    adata.obs["array_col"] = table["array_col"].to_numpy()
    adata.obsm["spatial"] = table[["pxl_col_in_fullres", "pxl_row_in_fullres"]].to_numpy(dtype=np.float64)
    images = {name: np.asarray(load_image(path, None)) for name, path in
              (("hires", hires_image), ("lowres", lowres_image)) if path is not None}
    factors = read_scalefactors(scalefactors, tuple(images))
    for name, path in (("hires", hires_image), ("lowres", lowres_image)):
        if name in images:
            _check_spots_on_image(adata.obsm["spatial"], factors[f"tissue_{name}_scalef"], images[name],
                                  Path(path), Path(scalefactors), name)
    library = library_id or meta.get("library_id") or default_library_id
    adata.uns["spatial"] = {library: {
        "images": images,
        "scalefactors": factors,
        "metadata": {k: meta[k] for k in ("chemistry_description", "software_version") if k in meta}
        | {"source": str(matrix.parent)}}}
    adata.uns["csm_library_id"] = library
    log.info("read %d spots x %d genes from %s (library '%s')", adata.n_obs, adata.n_vars, matrix, library)
    return adata


def _check_spots_on_image(fullres: np.ndarray, scale: float, image: np.ndarray, path: Path,
                          scalefactors: Path, name: str) -> None:
    """The spots (``fullres``: their full-resolution pixels ``(x, y)``) lie on the image at its
    scale factor; a few outside are logged, none inside is refused (an image or scale factors of
    another run)."""
    xy = fullres * scale
    h, w = image.shape[:2]
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
    if not inside.any():
        raise InputDataError(f"{path}: none of the spots lies on this {w}x{h} image at tissue_{name}_scalef "
                             f"{scale:g} ({scalefactors}); the image, the scale factors and the positions "
                             f"must come from one Space Ranger run")
    if not inside.all():
        log.warning("%s: %d of %d spots lie outside the image", path, int((~inside).sum()), len(xy))


def _merged(adata, merge, ids: list[str]):
    """``adata`` with the features of one name summed (``merge``); counts in ``layers["counts"]``."""
    import anndata as ad

    counts = merge.sum_columns(adata.X)
    first = np.unique(merge.group, return_index=True)[1]
    var = adata.var.iloc[first].copy()
    var.index = merge.names
    for name, columns in merge.repeated.items():
        var.loc[name, "gene_ids"] = ";".join(ids[j] for j in columns)
    out = ad.AnnData(X=counts.copy(), obs=adata.obs.copy(), var=var)
    out.layers["counts"] = counts
    record_merged_genes(out, {n: "features " + ", ".join(ids[j] for j in w) for n, w in merge.repeated.items()})
    return out
