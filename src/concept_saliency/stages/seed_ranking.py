"""The seed_ranking stage: the methods of a model trained with several seeds, ranked once.

Each seed's evaluate stage ranks the methods for its own training, and two trainings may
recommend different methods (a randomisation check passed narrowly by one, failed by the
other). This stage ranks them for the model: the seeds' evaluations averaged, with the
stability of the maps across the seeds as a criterion of its own
(:func:`~concept_saliency.stability.rank_across_seeds`).
"""

from __future__ import annotations

import logging

import pandas as pd

from ..artifacts import write_tsv
from ..errors import ArtifactError
from ..stability import SEED_RANKING_RULE, rank_across_seeds

log = logging.getLogger("concept_saliency")


def seed_ranking(*, summaries: list, stability: str, table: str,
                 randomisation_threshold: float = 0.5) -> dict:
    """``table``: one row per method, ranked from every seed's ``evaluation/summary.tsv``
    (``summaries``) and the model's ``stability.tsv``. Returns the ranking and its rule."""
    frames = [pd.read_csv(path, sep="\t") for path in summaries]
    for path, frame in zip(summaries[1:], frames[1:]):
        if sorted(frame["method"]) != sorted(frames[0]["method"]):
            raise ArtifactError(f"{path} and {summaries[0]} do not score the same methods; rerun the "
                                f"evaluate stage of every seed's model")
    ranked = rank_across_seeds(frames, pd.read_csv(stability, sep="\t"), randomisation_threshold)
    write_tsv(ranked, table)
    order = ranked.sort_values("rank")
    log.info("ranking over %d seeds: %s (%s)", len(frames), ", ".join(order["method"]), SEED_RANKING_RULE)
    for _, r in order.iterrows():
        log.info("%-22s faithfulness %.3f (lowest %.3f)  stability %.2f  recommended by %d of %d seeds",
                 r["method"], r["faithfulness"], r["faithfulness_min"], r["stability"],
                 r["recommended_by_seeds"], len(frames))
    return {"ranking": list(order["method"]), "ranking_rule": SEED_RANKING_RULE}
