"""Spatial transcriptomics as AnnData, in scanpy's and squidpy's layout.

In the paper's second experiment the *genes* are the samples and the tissue spots are
the features: every gene becomes a small image on the spot grid (:mod:`.grid`), and the
VAE is trained on those images. This module brings the inputs to one AnnData layout:

- :func:`counts_to_anndata`: an ST count matrix (:mod:`.st_counts`) with raw counts in
  ``layers["counts"]``, array coordinates in ``obs``, positions in ``obsm["spatial"]``:
  image pixels when the alignment matrix is given, with the H&E image and its scale
  factors under ``uns["spatial"][library_id]`` (:func:`set_tissue_image`), so that
  ``scanpy.pl.spatial`` draws the spots on it;
- :func:`read_user_anndata`: an existing ``.h5ad`` (e.g. Visium read by scanpy or squidpy)
  brought to the same layout, every field it needs checked;
- :func:`normalise`: spot and gene filters, then per-gene scaling to [0, 1];
- :func:`write_anndata` / :func:`read_anndata`: the ``csm.anndata`` artifact.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..artifacts import FORMATS, atomic_path, check_format
from ..errors import InputDataError
from .st_counts import ST_SPOT_DIAMETER, array_to_pixels, parse_spot, resolve_duplicate_genes

log = logging.getLogger(__name__)

ANN_FORMAT = "csm.anndata"
HIRES_MAX, LOWRES_MAX = 2000, 600  # longest side of the stored images, as Space Ranger's


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


def read_spatial_maps(path: str | os.PathLike):
    """The ``maps.h5ad`` of the workflow's spatial_maps stage (format-checked): the prepared
    AnnData with every concept's maps on the spots (``obs["csm_<concept>_<method>"]``, ...)."""
    return read_anndata(path, fmt="csm.spatial-maps")


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


def map_key(concept: str, what: str) -> str:
    """Column of ``obs`` (and key of ``obsm``) with ``what`` (a saliency method, or "decoded")
    of a concept, in the AnnData of the spatial_maps stage."""
    return f"csm_{concept}_{what}"
