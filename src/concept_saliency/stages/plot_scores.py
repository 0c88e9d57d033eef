"""The plot_scores stage: histograms of every concept's scores, with vs without the concept."""

from __future__ import annotations

import pandas as pd

from ..artifacts import check_provenance_format
from ..concept_vectors import evaluated_on, held_out_samples, read_concepts
from ..encoding import read_latents
from ..plotting import plot_score_histograms, save_figure


def plot_scores(*, concepts: str, latents: str, separation: str, figure: str) -> None:
    """One histogram per concept (attributes: held-out samples; groups: every sample), titled with
    its AUROC from ``separation``."""
    check_provenance_format(separation, "csm.table")
    cs = read_concepts(concepts)
    held_out = held_out_samples(read_latents(latents).split)
    auroc = pd.read_csv(separation, sep="\t").set_index("concept")["auroc"]
    subsets = [evaluated_on(kind, held_out) for kind in cs.kinds]
    fig = plot_score_histograms([cs.scores[m, k] for k, m in enumerate(subsets)],
                                [cs.positives[k][m] for k, m in enumerate(subsets)], cs.names,
                                [auroc[n] for n in cs.names], title="concept scores: with vs without")
    save_figure(fig, figure)
