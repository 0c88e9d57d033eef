"""The localise stage: every method's maps scored against the regions the data know."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ..artifacts import open_h5, write_tsv
from ..concept_vectors import read_concepts
from ..data.grid import concept_spot_map, pixels_to_spots, read_grid
from ..data.regions import RegionStore
from ..data.samples import TRAIN, SampleStore
from ..errors import ArtifactError, UserError
from ..localisation import (DATA_REFERENCE, box_masks, mean_difference_maps, score_against_masks,
                            score_against_regions, summarise)
from ..plotting import plot_localisation, save_figure
from ..saliency_maps import read_maps

log = logging.getLogger("concept_saliency")


def localise(*, concepts: str, maps: list, table: str, per_sample: str, figure: str,
             masks: str | None = None, samples: str | None = None, image_regions: str | None = None,
             grid: str | None = None, regions: dict | None = None, seed: int = 0) -> None:
    """Score every method's maps against known regions; ``table``: means per method, concept and
    region (:mod:`concept_saliency.localisation`), ``per_sample``: every map's scores.

    The regions: the demo shapes' ``masks`` (a concept's region is its own mask); the boxes and
    masks given with a user's images (``image_regions``, :mod:`..data.regions`), else the boxes
    of the sample store (``samples``: CelebA's face parts), where ``regions`` maps a concept to
    its region and only the explained samples that show the concept are scored; or the
    annotated spots of a tissue ``grid`` (each concept's map, the mean over its explained member
    genes, against every region; ``regions`` names a concept's own region). A random map
    (uniform noise) is scored too, as the baseline, and for labelled images the data's own
    difference between positive and negative images (``mean_image_difference``).
    """
    cs = read_concepts(concepts)
    own = dict(regions or {})
    if grid:
        score = _spot_scorer(grid, cs.positives, cs.names, own)
    elif masks:
        score = _mask_scorer(masks, cs.ids)
    else:
        score = _box_scorer(image_regions or samples, own,
                            dict(zip(cs.names, np.asarray(cs.positives, dtype=bool))), cs.ids)
    references = {} if grid or masks else _mean_differences(samples, cs, own)
    rng = np.random.default_rng(seed)
    rows = []
    for i, path in enumerate(maps):
        for name in cs.names:
            r = read_maps(path, name)
            scored = [(r["method"], r["maps"])]
            if i == 0:  # the baselines, once
                scored.append(("random", rng.random(r["maps"].shape)))
                if name in references:
                    scored.append((DATA_REFERENCE, np.broadcast_to(references[name], (len(r["indices"]),
                                                                                 *references[name].shape))))
            for method, values in scored:
                found = score(name, values, r["indices"])
                if found is not None:
                    rows.append(found.assign(method=method, concept=name))
    if not rows:
        raise UserError("no concept has a known region to score its maps against (or none of the "
                        "explained samples that show it has that region); name each concept's "
                        "region with the dataset's 'localisation.regions', or set 'localisation: "
                        "{enabled: false}'")
    detail = pd.concat(rows, ignore_index=True)
    first = ["method", "concept", "region", *(["sample"] if "sample" in detail else [])]
    detail = detail[first + [c for c in detail.columns if c not in first]]
    summary = summarise(detail)
    write_tsv(summary, table)
    write_tsv(detail, per_sample)
    save_figure(plot_localisation(summary, title="where the maps point: scores against known regions",
                                 last=(DATA_REFERENCE, "random")),
                figure)
    for _, row in summary[summary["own"] > 0].iterrows():
        log.info("%-22s %-20s %-12s AUROC %.3f  mass ratio %.2f  peak inside %.0f%%", row["method"],
                 row["concept"], row["region"], row["auroc"], row["mass_ratio"], 100 * row["peak_in_region"])


def _mean_differences(samples: str, cs, own: dict) -> dict:
    """concept -> its mean image difference (positives - negatives, training split), for the
    attribute concepts with a region and both kinds of training image."""
    keep = [k for k, (name, kind) in enumerate(zip(cs.names, cs.kinds)) if kind == "attribute" and name in own]
    if not keep:
        return {}
    with SampleStore(samples) as store:
        maps = mean_difference_maps(store.iter_blocks(1024), np.asarray(cs.positives)[keep],
                                    store.split == TRAIN)
    return {cs.names[k]: m for k, m in zip(keep, maps) if np.isfinite(m).all()}


def _mask_scorer(masks: str, ids):
    """The demo's shapes: a concept's own mask (named as the concept) for each explained sample."""
    dec = lambda a: [v.decode() if isinstance(v, bytes) else v for v in a]  # noqa: E731
    with open_h5(masks, "csm.masks") as f:
        names = dec(f["names"][()])
        row_of = {sid: i for i, sid in enumerate(dec(f["ids"][()]))}
        stored = f["masks"][()]  # (samples, concepts, H, W)

    def score(concept, values, indices) -> pd.DataFrame | None:
        if concept not in names:
            return None
        rows = np.asarray([row_of[ids[i]] for i in indices])
        picked = stored[rows, names.index(concept)].astype(bool)
        return score_against_masks(values, picked).assign(region=concept, sample=indices, own=1)

    return score


def _box_scorer(path: str, own: dict, positives: dict, ids: list[str]):
    """Images with regions (``path``: a regions file or a sample store with boxes,
    :class:`..data.regions.RegionStore`): each explained sample that shows the concept
    (``positives``: concept -> bool per sample) against its concept's region (``own``: concept ->
    region), where that sample has it. A face without the attribute has no evidence of it in its
    part to point at. ``ids``: the samples the maps index, which ``path`` must hold in that order."""
    with RegionStore(path) as store:
        if list(store.ids) != list(ids):
            raise ArtifactError(f"{path}: holds the regions of other samples than the model's; rerun "
                                f"the stage that packed it (snakemake --forcerun prepare_regions)")
        if store.boxes is None and not store.mask_names:
            raise UserError(f"{path}: holds no regions of its images to score the maps against "
                            f"(boxes or masks); rerun the stage that packed it, or set 'localisation: "
                            f"{{enabled: false}}'")
        boxes, box_names, shape = store.boxes, list(store.box_names), store.image_shape
        mask_names = list(store.mask_names)

    def score(concept, values, indices) -> pd.DataFrame | None:
        region = own.get(concept)
        if region is None or (region == concept and region not in box_names + mask_names):
            return None  # no region named, or none named as the concept (the default guess)
        if region not in box_names + mask_names:
            raise UserError(f"region '{region}' (config key 'localisation.regions'): {path} has the "
                            f"regions {', '.join(box_names + mask_names)}")
        shows = positives[concept][np.asarray(indices)]
        if not shows.any():
            return None
        values, indices = values[shows], np.asarray(indices)[shows]
        if region in mask_names:
            with RegionStore(path) as store:
                masks = store.masks(indices, region)
        else:
            masks = box_masks(boxes[indices, box_names.index(region)], shape)
        known = masks.reshape(len(masks), -1).any(axis=1)  # a sample without the region: not scored
        if not known.any():
            return None
        return score_against_masks(values[known], masks[known]).assign(
            region=region, sample=indices[known], own=1)

    return score


def _spot_scorer(grid: str, positives, names: list[str], own: dict):
    """A tissue: each concept's map on the spots (mean over its explained members) against every
    annotated region."""
    index, regions = read_grid(grid)
    if regions is None:
        raise UserError(f"{grid}: the spots have no region annotation to score the maps against; give "
                        f"one in the source ('annotation', 'region_key'), or set 'localisation: "
                        f"{{enabled: false}}'")

    def score(concept, values, indices) -> pd.DataFrame:
        spot_map = concept_spot_map(pixels_to_spots(values, index), indices, positives[names.index(concept)])
        scored = score_against_regions(spot_map, regions)
        return scored.assign(own=(scored["region"] == own.get(concept)).astype(int))

    return score
