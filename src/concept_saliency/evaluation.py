"""Scoring saliency maps against known concept regions (the demo's ground truth).

For every explained sample with a known region of its concept:

- ``mass_inside``: the share of the map's absolute relevance that falls inside
  the region (relevance mass accuracy; a map blind to the region scores the
  region's share of the features, ``region_fraction``);
- ``auroc``: how well the absolute map separates region from non-region
  features (0.5 for a random map).

A random map (uniform noise, fixed seed) is scored the same way as a baseline.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .concepts import auroc


def feature_relevance(maps: np.ndarray) -> np.ndarray:
    """``(N, H, W[, C])`` maps -> ``(N, H*W)`` absolute relevance per pixel (channels summed)."""
    maps = np.abs(np.asarray(maps, dtype=np.float64))
    if maps.ndim == 4:
        maps = maps.sum(axis=-1)
    return maps.reshape(len(maps), -1)


def localisation(relevance: np.ndarray, masks: np.ndarray) -> pd.DataFrame:
    """Per sample: mass inside the mask, AUROC of relevance vs mask, mask fraction.

    ``relevance`` and ``masks`` are ``(N, F)``: non-negative relevance and bool
    regions over the same F features.
    """
    rows = []
    for r, m in zip(relevance, masks.astype(bool)):
        total = r.sum()
        rows.append({
            "mass_inside": float(r[m].sum() / total) if total > 0 else float("nan"),
            "auroc": auroc(r, m),
            "region_fraction": float(m.mean()),
        })
    return pd.DataFrame(rows)


def random_relevance(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape)


def summarise(per_sample: pd.DataFrame) -> pd.DataFrame:
    """Mean over samples per method (and the random baseline), with a 'beats_random' verdict."""
    table = (per_sample.groupby("method", sort=False)[["mass_inside", "auroc", "region_fraction"]]
             .mean().reset_index())
    table["n_maps"] = per_sample.groupby("method", sort=False).size().to_numpy()
    rand = table.loc[table["method"] == "random"]
    if len(rand):
        rm, ra = float(rand["mass_inside"].iloc[0]), float(rand["auroc"].iloc[0])
        table["beats_random"] = (table["mass_inside"] > rm) & (table["auroc"] > ra)
        table.loc[table["method"] == "random", "beats_random"] = False
    return table
