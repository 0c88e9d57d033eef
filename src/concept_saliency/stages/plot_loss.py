"""The plot_loss stage: the training loss curves of a model."""

from __future__ import annotations

import pandas as pd

from ..artifacts import check_provenance_format
from ..plotting import plot_history, save_figure


def plot_loss(*, history: str, figure: str, title: str = "") -> None:
    """Training and validation loss per epoch, from ``history.csv`` of the train stage."""
    check_provenance_format(history, "csm.history")
    save_figure(plot_history(pd.read_csv(history), title=title), figure)
