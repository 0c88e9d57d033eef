"""Do the maps point where the concept is? Scoring concept saliency maps against known regions.

The regions come from the data: the demo's shape masks, face parts from CelebA's
landmarks (:func:`concept_saliency.face_parts.face_part_boxes`), boxes given with a user's
images, or the annotated regions of a tissue's spots. For a map over features (pixels, channels summed; or spots)
and a region (a boolean mask over the same features), :func:`region_scores` gives

- ``auroc``: how well the signed map separates the region's features from the others
  (1: every feature inside scores higher than every feature outside; 0.5: no better than
  chance); ``auroc_abs`` the same for ``|map|``;
- ``mass_ratio``: the share of ``|map|`` inside the region divided by the region's share of
  the features (1: no better than a uniform map; ``mass_inside`` and ``area_share`` are
  the two parts);
- ``peak_in_region``: whether the feature of largest ``|map|`` lies inside the region.

A random map (uniform noise) is scored as the floor; for labelled images, the data's own
difference between positive and negative images (:func:`mean_difference_maps`) as a
reference for what the labels point at. Image maps are scored against their concept's
region (``regions``: attribute -> part); tissue maps (one map per concept: the mean over
its explained member genes) against every annotated region, so a table shows which region a
concept's map points at.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .concept_vectors import auroc
from .evaluation import flat_maps


def box_masks(boxes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``(N, H, W)`` masks of the pixels whose centres lie in each box; a box between centres
    (smaller than a pixel) gets the pixel holding its centre, so no box vanishes (NaN box:
    empty mask)."""
    h, w = shape
    yc, xc = np.arange(h) + 0.5, np.arange(w) + 0.5
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    with np.errstate(invalid="ignore"):
        inside_x = (xc[None, :] >= b[:, 0:1]) & (xc[None, :] < b[:, 2:3])
        inside_y = (yc[None, :] >= b[:, 1:2]) & (yc[None, :] < b[:, 3:4])
    given = np.isfinite(b).all(axis=1)
    for axis, inside, size in ((0, inside_x, w), (1, inside_y, h)):
        empty = given & ~inside.any(axis=1)
        centre = np.clip(((b[empty, axis] + b[empty, axis + 2]) / 2).astype(int), 0, size - 1)
        inside[np.flatnonzero(empty), centre] = True
    return inside_y[:, :, None] & inside_x[:, None, :]


#: The name of :func:`mean_difference_maps`' row in the localisation tables (a reference, never
#: ranked, drawn last with the random map).
DATA_REFERENCE = "mean_image_difference"


def mean_difference_maps(blocks, positives: np.ndarray, fit_on: np.ndarray) -> np.ndarray:
    """The data's own map of each labelled concept: ``|mean of the positives - mean of the
    negatives|`` per pixel (channels summed) over the samples ``fit_on``, ``(K, H, W)``.

    Where the pixels of positive and negative images differ, whatever the model: scored like a
    method's maps, it shows how far the labels themselves point at a region (an open mouth
    also moves the chin; lipstick comes with long hair). ``blocks``: ``(start, x)`` pairs
    (:meth:`~concept_saliency.data.samples.SampleStore.iter_blocks`); ``positives``:
    ``(K, N)`` bool.
    """
    positives = np.asarray(positives, dtype=bool) & np.asarray(fit_on, dtype=bool)[None, :]
    n_pos = positives.sum(axis=1)
    n_neg = int(np.sum(fit_on)) - n_pos
    pos_sum = total = shape = None
    for start, x in blocks:
        shape = x.shape[1:]
        flat = x.reshape(len(x), -1).astype(np.float64)
        keep = np.asarray(fit_on[start:start + len(x)], dtype=np.float64)
        p = positives[:, start:start + len(x)].astype(np.float64)
        pos_sum = p @ flat if pos_sum is None else pos_sum + p @ flat
        total = keep @ flat if total is None else total + keep @ flat
    with np.errstate(invalid="ignore", divide="ignore"):
        diff = pos_sum / n_pos[:, None] - (total[None, :] - pos_sum) / n_neg[:, None]
    diff = np.abs(diff.reshape(len(diff), *shape))
    return diff.sum(axis=-1) if diff.ndim == 4 else diff


def region_scores(values: np.ndarray, region: np.ndarray) -> dict[str, float]:
    """The scores of one map over features (``values``, signed) against one ``region`` (bool)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    region = np.asarray(region, dtype=bool).ravel()
    magnitude = np.abs(values)
    total, share = magnitude.sum(), region.mean()
    inside = float(magnitude[region].sum() / total) if total > 0 else float("nan")
    return {"auroc": auroc(values, region), "auroc_abs": auroc(magnitude, region),
            "mass_inside": inside, "area_share": float(share),
            "mass_ratio": inside / share if share > 0 else float("nan"),
            "peak_in_region": float(region[int(np.argmax(magnitude))]) if total > 0 else float("nan")}


def score_against_masks(maps: np.ndarray, masks: np.ndarray) -> pd.DataFrame:
    """One row of :func:`region_scores` per map (``(N, H, W[, C])``) and its mask (``(N, H, W)``)."""
    flat = flat_maps(maps)
    return pd.DataFrame([region_scores(v, m) for v, m in zip(flat, np.asarray(masks).reshape(len(maps), -1))])


def score_against_regions(spot_map: np.ndarray, labels) -> pd.DataFrame:
    """One row per annotated region (``labels``: the region of each spot, ``""`` where none) for
    one map over the spots, scored among the annotated spots only; with the rank of each
    region's AUROC (1: the region the map points at most)."""
    labels = np.asarray(labels, dtype=object)
    annotated = labels != ""
    v = np.asarray(spot_map, dtype=np.float64)[annotated]
    rows = [{"region": r, **region_scores(v, labels[annotated] == r)}
            for r in sorted(set(labels[annotated]))]
    table = pd.DataFrame(rows)
    if len(table):
        table["rank"] = table["auroc"].rank(ascending=False, method="min").astype(int)
    return table


SUMMARY = ["auroc", "auroc_abs", "mass_ratio", "mass_inside", "area_share", "peak_in_region"]


def summarise(per_map: pd.DataFrame, by=("method", "concept", "region")) -> pd.DataFrame:
    """Means over the maps of each ``by`` group, with their number (``n_maps``)."""
    by = [c for c in by if c in per_map]
    cols = [c for c in SUMMARY + ["rank", "own"] if c in per_map]
    table = per_map.groupby(by, sort=False)[cols].mean().reset_index()
    table.insert(len(by), "n_maps", per_map.groupby(by, sort=False).size().to_numpy())
    return table


def method_localisation(table: pd.DataFrame) -> pd.DataFrame:
    """Per method, over the concepts with an own region: mean AUROC, mass ratio and peak rate
    on that region, and (tissue) the share of concepts whose own region ranks first.

    ``localisation_auroc`` is the AUROC of the map's magnitude for images (a pixel's sign
    follows the local contrast: an edge the concept needs gets both signs) and of the signed
    map for tissue (a spot's sign says whether its expression raises the concept score); tissue
    tables are those with a ``rank`` of the regions (:func:`score_against_regions`).
    """
    own = table[table["own"] > 0] if "own" in table else table.iloc[0:0]
    if not len(own):
        return pd.DataFrame(columns=["method"])
    tissue = "rank" in own
    out = own.groupby("method", sort=False).agg(
        localisation_auroc=("auroc" if tissue else "auroc_abs", "mean"), mass_ratio=("mass_ratio", "mean"),
        peak_in_region=("peak_in_region", "mean")).reset_index()
    if tissue:
        out["own_region_first"] = own.groupby("method", sort=False)["rank"].apply(
            lambda r: float((r == 1).mean())).to_numpy()
    return out
