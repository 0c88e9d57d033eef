"""The summary_figure stage: attributes x methods, one image per attribute."""

from __future__ import annotations

import logging

import numpy as np

from ..concept_vectors import read_concepts
from ..data.samples import SampleStore
from ..plotting import plot_concept_grid, save_figure
from ..saliency_maps import read_maps

log = logging.getLogger("concept_saliency")


def summary_figure(*, samples: str, concepts: str, maps: list, figure: str, rank: int = 1,
                   top_k: int = 1) -> None:
    """One row per concept: its positive image of score ``rank`` (among the ``top_k`` explained;
    the paper showed the third) beside the map of every method."""
    cs = read_concepts(concepts)
    rows, per_method, labels = [], {}, []
    for k, name in enumerate(cs.names):
        chosen = cs.explain[name][:top_k]
        ranked = [j for j, i in enumerate(chosen) if cs.positives[k][i]] or [0]
        j = ranked[min(rank, len(ranked)) - 1]  # position among the maps of this concept
        rows.append(int(chosen[j]))
        labels.append(f"{name}\n{cs.ids[chosen[j]]} (rank {j + 1})")
        for path in maps:
            r = read_maps(path, name)
            per_method.setdefault(r["method"], []).append(r["maps"][j])
    with SampleStore(samples) as store:
        x = store.read(np.asarray(rows))
    fig = plot_concept_grid(x, {m: np.stack(v) for m, v in per_method.items()}, labels,
                            title=f"concept saliency maps: {len(cs.names)} concepts x {len(per_method)} methods")
    save_figure(fig, figure, dpi=90)
    log.info("summary of %d concepts x %d methods", len(cs.names), len(per_method))
