"""The ground-truth stage: saliency inside the known concept regions (demo data)."""

from __future__ import annotations

import logging

import numpy as np

from ..artifacts import Provenance
from ..errors import UserError
from .saliency import read_maps
from . import write_table

log = logging.getLogger("concept_saliency")


def evaluate_groundtruth(*, vectors: str, maps: list, table: str, per_sample: str, figure: str,
                         masks: str | None = None, grid: str | None = None, seed: int = 0) -> None:
    """How much of each method's relevance falls inside the known concept region."""
    import pandas as pd

    from ..artifacts import open_h5
    from ..concepts import read_concepts
    from ..evaluation import feature_relevance, localisation, random_relevance, summarise
    from ..rendering import plot_groundtruth

    prov = Provenance("evaluate_groundtruth", {"seed": seed},
                      {"concepts": vectors, "maps": list(maps)}
                      | ({"masks": masks} if masks else {}) | ({"grid": grid} if grid else {}))
    cs = read_concepts(vectors)
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
        from ..data.spatial import pixels_to_spots, read_grid

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
    write_table(summary, table, prov)
    write_table(detail, per_sample, prov)
    plot_groundtruth(summary, figure, title="saliency inside the known concept region")
    prov.write(figure, "csm.figure")
    for _, r in summary.iterrows():
        log.info("%-22s mass inside %.3f  AUROC %.3f", r["method"], r["mass_inside"], r["auroc"])
