"""The evaluate_groundtruth stage: saliency inside the known concept regions (demo data)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ..artifacts import open_h5, write_tsv
from ..concept_vectors import read_concepts
from ..data.grid import pixels_to_spots, read_grid
from ..errors import UserError
from ..evaluation import feature_relevance, localisation, random_relevance, summarise
from ..plotting import plot_groundtruth, save_figure
from ..saliency_maps import read_maps

log = logging.getLogger("concept_saliency")


def evaluate_groundtruth(*, concepts: str, maps: list, table: str, per_sample: str, figure: str,
                         masks: str | None = None, grid: str | None = None, seed: int = 0) -> None:
    """How much of each method's relevance falls inside the known concept region: the demo
    shapes' ``masks``, or the annotated regions of the spot ``grid`` (a concept named as a
    region). ``table``: per method; ``per_sample``: per map; with a random baseline."""
    cs = read_concepts(concepts)
    if masks:
        dec = lambda a: [v.decode() if isinstance(v, bytes) else v for v in a]  # noqa: E731
        with open_h5(masks, "csm.masks") as f:
            mask_names = dec(f["names"][()])
            mask_row = {sid: i for i, sid in enumerate(dec(f["ids"][()]))}
            all_masks = f["masks"][()]

        def region(concept, indices):
            if concept not in mask_names:
                return None
            rows = [mask_row[cs.ids[i]] for i in indices]
            return all_masks[rows, mask_names.index(concept)].reshape(len(indices), -1)

        def features(m, indices):
            return feature_relevance(m)
    else:
        index, regions = read_grid(grid)
        regions = np.asarray(regions)

        def region(concept, indices):
            if concept not in set(regions):
                return None
            return np.broadcast_to(regions == concept, (len(indices), len(regions)))

        def features(m, indices):
            return np.abs(pixels_to_spots(m, index))

    rows = []
    for path in maps:
        for concept in cs.names:
            r = read_maps(path, concept)
            gt = region(concept, r["indices"])
            if gt is None:
                continue
            rel = features(r["maps"], r["indices"])
            for method, values in ((r["method"], rel), ("random", random_relevance(rel.shape, seed))):
                df = localisation(values, gt)
                df.insert(0, "sample", r["indices"])
                df.insert(0, "concept", concept)
                df.insert(0, "method", method)
                rows.append(df)
    if not rows:
        raise UserError("no concept has a known region to evaluate against; "
                        "set 'groundtruth: false' for this dataset")
    detail = pd.concat(rows, ignore_index=True)
    # the random baseline was scored once per method file: keep one copy
    detail = detail.drop_duplicates(subset=["method", "concept", "sample"])
    summary = summarise(detail)
    write_tsv(summary, table)
    write_tsv(detail, per_sample)
    save_figure(plot_groundtruth(summary, title="saliency inside the known concept region"), figure)
    for _, r in summary.iterrows():
        log.info("%-22s mass inside %.3f  AUROC %.3f", r["method"], r["mass_inside"], r["auroc"])
