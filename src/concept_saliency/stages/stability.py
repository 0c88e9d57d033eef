"""The stability stage: maps and concept scores of one model trained with several seeds, compared."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ..artifacts import write_tsv
from ..concept_vectors import auroc, evaluated_on, held_out_samples
from ..data.grid import read_grid
from ..data.samples import SampleStore
from ..errors import UserError
from ..model import load_model
from ..plotting import plot_stability, save_figure
from ..saliency import get_method
from ..stability import map_agreement, read_seed_concepts, score_agreement

log = logging.getLogger("concept_saliency")


def stability(*, samples: str, encoders: list, concepts: list, table: str, figure: str,
              methods: dict, samples_per_concept: int = 4, threshold: float = 0.5,
              chunk_size: int = 64, grid: str | None = None) -> dict:
    """``table``: per concept and method, how alike the maps of the same samples are across the
    models of each seed (``encoders`` and their ``concepts``, in the same order), and how alike
    their concept scores and AUROCs are; ``stable`` when the maps' mean rank correlation
    reaches ``threshold``. The samples are the first model's explained samples of each concept
    (at most ``samples_per_concept``); with a tissue ``grid`` the features are its spots."""
    sets = read_seed_concepts(concepts)
    first = sets[0]
    features = read_grid(grid)[0].tissue_mask() if grid else None
    models = [load_model(path, "encoder") for path in encoders]
    rows = []
    with SampleStore(samples) as store:
        held_out = held_out_samples(store.split)
        for k, name in enumerate(first.names):
            chosen = first.explain[name][:samples_per_concept]
            if not len(chosen):
                log.warning("concept %s has no explained samples: not compared across seeds", name)
                continue
            x = store.read(chosen)
            scores = [cs.scores[:, k] for cs in sets]
            held = evaluated_on(first.kinds[k], held_out)  # as separation.tsv measures it
            aurocs = [auroc(cs.scores[held, k], cs.positives[k][held]) for cs in sets]
            common = {"concept": name, "n_samples": len(chosen), "score_spearman": score_agreement(scores),
                      "auroc_mean": float(np.mean(aurocs)), "auroc_sd": float(np.std(aurocs))}
            for method, options in methods.items():
                cls = get_method(method)
                opts = cls.validate_options(options or {})
                maps = [cls(model, cs.vectors, chunk_size=chunk_size).attribute(x, concept=k, **opts)
                        for model, cs in zip(models, sets)]
                rows.append({**common, "method": method, **map_agreement(maps, features)})
    if not rows:
        raise UserError(f"{concepts[0]}: no concept has explained samples to compare across seeds")
    result = pd.DataFrame(rows)
    result["stable"] = result["map_spearman"] >= threshold
    result = result[["concept", "method", "n_samples", "map_spearman", "map_spearman_min",
                     "map_spearman_abs", "stable", "score_spearman", "auroc_mean", "auroc_sd"]]
    write_tsv(result, table)
    save_figure(plot_stability(result, threshold, title=f"stability across {len(models)} seeds"), figure)
    unstable = result.loc[~result["stable"], ["concept", "method"]]
    if len(unstable):
        log.warning("maps that change with the training seed (rank correlation below %.2f): %s", threshold,
                    ", ".join(f"{c}/{m}" for c, m in unstable.itertuples(index=False)))
    return {"seeds": len(models), "unstable": len(unstable)}
