"""The localise stage: every method's maps scored against the regions the data know."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ..artifacts import open_h5, write_tsv
from ..concept_vectors import read_concepts
from ..data.grid import concept_spot_map, read_grid
from ..data.samples import SampleStore
from ..errors import UserError
from ..localisation import box_masks, score_against_masks, score_against_regions, summarise
from ..plotting import plot_localisation, save_figure
from ..saliency_maps import read_maps

log = logging.getLogger("concept_saliency")


def localise(*, concepts: str, maps: list, table: str, per_sample: str, figure: str,
             masks: str | None = None, samples: str | None = None, grid: str | None = None,
             regions: dict | None = None, seed: int = 0) -> None:
    """Score every method's maps against known regions; ``table``: means per method, concept and
    region (:mod:`concept_saliency.localisation`), ``per_sample``: every map's scores.

    The regions: the demo shapes' ``masks`` (a concept's region is its own mask), the boxes of
    the sample store (``samples``: CelebA's face parts, a user's boxes; ``regions`` maps a
    concept to its box) or the annotated spots of a tissue ``grid`` (each concept's map, the
    mean over its explained member genes, against every region; ``regions`` names a concept's
    own region). A random map (uniform noise) is scored too, as the baseline.
    """
    cs = read_concepts(concepts)
    own = dict(regions or {})
    rng = np.random.default_rng(seed)
    rows = []
    for path in maps:
        for k, name in enumerate(cs.names):
            r = read_maps(path, name)
            for method, values in ((r["method"], r["maps"]), ("random", rng.random(r["maps"].shape))):
                if grid:
                    found = _against_spots(grid, values, r["indices"], cs.positives[k], own.get(name))
                elif masks:
                    found = _against_masks(masks, cs.ids, name, values, r["indices"])
                else:
                    found = _against_boxes(samples, own.get(name), values, r["indices"])
                if found is not None:
                    rows.append(found.assign(method=method, concept=name))
    if not rows:
        raise UserError("no concept has a known region to score its maps against; name each concept's "
                        "region with the dataset's 'localisation.regions', or set 'localisation: "
                        "{enabled: false}'")
    detail = pd.concat(rows, ignore_index=True)
    # the random baseline was scored once per method file: keep the first
    key = ["method", "concept", "region", "sample"] if "sample" in detail else ["method", "concept", "region"]
    detail = detail.drop_duplicates(subset=key)
    first = ["method", "concept", "region", *(["sample"] if "sample" in detail else [])]
    detail = detail[first + [c for c in detail.columns if c not in first]]
    summary = summarise(detail)
    write_tsv(summary, table)
    write_tsv(detail, per_sample)
    save_figure(plot_localisation(summary, title="where the maps point: scores against known regions"),
                figure)
    for _, row in summary[summary["own"] > 0].iterrows():
        log.info("%-22s %-20s %-12s AUROC %.3f  mass ratio %.2f  peak inside %.0f%%", row["method"],
                 row["concept"], row["region"], row["auroc"], row["mass_ratio"], 100 * row["peak_in_region"])


def _against_masks(masks: str, ids, concept: str, values, indices) -> pd.DataFrame | None:
    """The demo's shapes: a concept's own mask (named as the concept) for each explained sample."""
    dec = lambda a: [v.decode() if isinstance(v, bytes) else v for v in a]  # noqa: E731
    with open_h5(masks, "csm.masks") as f:
        names = dec(f["names"][()])
        if concept not in names:
            return None
        row_of = {sid: i for i, sid in enumerate(dec(f["ids"][()]))}
        rows = np.asarray([row_of[ids[i]] for i in indices])
        stored = f["masks"][()]  # (samples, concepts, H, W)
        picked = stored[rows, names.index(concept)].astype(bool)
    return score_against_masks(values, picked).assign(region=concept, sample=indices, own=1)


def _against_boxes(samples: str, region: str | None, values, indices) -> pd.DataFrame | None:
    """Images with boxes in the sample store: each explained sample against its concept's box."""
    if region is None:
        return None
    with SampleStore(samples) as store:
        if store.boxes is None:
            raise UserError(f"{samples}: holds no regions of its images to score the maps against "
                            f"(boxes); rerun the stage that packed it, or set 'localisation: "
                            f"{{enabled: false}}'")
        if region not in store.box_names:
            raise UserError(f"region '{region}' (config key 'localisation.regions'): {samples} has the "
                            f"regions {', '.join(store.box_names)}")
        boxes = store.boxes[np.asarray(indices), store.box_names.index(region)]
        shape = store.sample_shape[:2]
    scored = score_against_masks(values, box_masks(boxes, shape))
    return scored.assign(region=region, sample=indices, own=1)


def _against_spots(grid: str, values, indices, positives, own_region: str | None) -> pd.DataFrame:
    """A tissue: the concept's map on the spots (mean over its explained members) against every
    annotated region."""
    index, regions = read_grid(grid)
    if regions is None:
        raise UserError(f"{grid}: the spots have no region annotation to score the maps against; give "
                        f"one in the source ('annotation', 'region_key'), or set 'localisation: "
                        f"{{enabled: false}}'")
    spot_map = concept_spot_map(values, indices, positives, index)
    scored = score_against_regions(spot_map, regions)
    return scored.assign(own=(scored["region"] == own_region).astype(int))
