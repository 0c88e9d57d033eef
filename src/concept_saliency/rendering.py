"""Figures: loss curves, score histograms, concept maps on images and on tissue.

Maps are shown as the paper did: clipped to their 0.5 and 99.5 percentiles.
Channels are summed (signed) and drawn with a diverging colour map centred on
zero: red raises the concept score, blue lowers it.
"""

from __future__ import annotations

import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .artifacts import atomic_path  # noqa: E402

CLIP = (0.5, 99.5)


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png",
                    metadata={"Software": "concept-saliency"})
    plt.close(fig)


def clip_map(m: np.ndarray, clip: tuple[float, float] = CLIP) -> tuple[np.ndarray, float]:
    """Channel-summed map clipped at the given percentiles; returns it and a symmetric limit."""
    m = np.asarray(m, dtype=np.float64)
    if m.ndim == 3:
        m = m.sum(axis=-1)
    lo, hi = np.percentile(m, clip)
    m = np.clip(m, lo, hi)
    lim = max(abs(lo), abs(hi)) or 1.0
    return m, lim


def plot_history(history, path, title: str = "") -> None:
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for col, style in (("loss", "-"), ("val_loss", "--")):
        if col in history:
            ax.plot(history["epoch"], history[col], style, marker="o", ms=3, label=col)
    ax.set_xlabel("epoch")
    ax.set_ylabel("BCE + weighted KL")
    ax.set_title(title, fontsize=9)
    ax.legend()
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def plot_score_histograms(scores, positives, names, aurocs, path, title: str = "") -> None:
    """One panel per concept: scores of samples with vs without it.

    ``scores[k]`` and ``positives[k]`` are the scores and labels shown for concept k.
    """
    k = len(names)
    cols = min(4, k)
    rows = math.ceil(k / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.2 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= k:
            ax.axis("off")
            continue
        s, p = np.asarray(scores[i]), np.asarray(positives[i], dtype=bool)
        bins = np.histogram_bin_edges(s, bins=30)
        # densities: a rare concept's few positives stay visible beside the many negatives
        ax.hist(s[~p], bins=bins, alpha=0.6, label="without", color="tab:blue", density=True)
        ax.hist(s[p], bins=bins, alpha=0.6, label="with", color="tab:red", density=True)
        ax.set_title(f"{names[i]}  AUROC {aurocs[i]:.2f}", fontsize=8)
        ax.tick_params(labelsize=6)
    axes.flat[0].legend(fontsize=6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / (2.2 * rows)))  # room for the title
    save_figure(fig, path)


def plot_image_maps(inputs, maps: dict, sample_ids, path, title: str = "") -> None:
    """Rows: samples; columns: the input, then one map per method."""
    n, methods = len(inputs), list(maps)
    fig, axes = plt.subplots(n, 1 + len(methods), figsize=(1.6 * (1 + len(methods)), 1.7 * n),
                             squeeze=False)
    for i in range(n):
        img = inputs[i]
        axes[i, 0].imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None)
        axes[i, 0].set_ylabel(str(sample_ids[i]), fontsize=6)
        for j, method in enumerate(methods):
            m, lim = clip_map(maps[method][i])
            axes[i, 1 + j].imshow(m, cmap="bwr", vmin=-lim, vmax=lim)
            if i == 0:
                axes[i, 1 + j].set_title(method.replace("_", "\n"), fontsize=7)
        if i == 0:
            axes[i, 0].set_title("input", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def plot_spatial_maps(expression, maps: dict, coords, sample_ids, path, title: str = "") -> None:
    """Like :func:`plot_image_maps`, drawn on the tissue spots (``coords``: (spots, 2) x, y)."""
    n, methods = len(expression), list(maps)
    fig, axes = plt.subplots(n, 1 + len(methods), figsize=(2.0 * (1 + len(methods)), 1.9 * n),
                             squeeze=False)
    x, y = coords[:, 0], coords[:, 1]
    size = max(4.0, 900.0 / max(len(x), 1))
    for i in range(n):
        sc = axes[i, 0].scatter(x, y, c=expression[i], s=size, cmap="viridis")
        axes[i, 0].set_ylabel(str(sample_ids[i]), fontsize=6)
        if i == 0:
            axes[i, 0].set_title("expression", fontsize=7)
        for j, method in enumerate(methods):
            v = np.asarray(maps[method][i], dtype=np.float64)
            lo, hi = np.percentile(v, CLIP)
            v = np.clip(v, lo, hi)
            lim = max(abs(lo), abs(hi)) or 1.0
            sc = axes[i, 1 + j].scatter(x, y, c=v, s=size, cmap="bwr", vmin=-lim, vmax=lim)
            if i == 0:
                axes[i, 1 + j].set_title(method.replace("_", "\n"), fontsize=7)
        fig.colorbar(sc, ax=axes[i, -1], fraction=0.05)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.invert_yaxis()
        ax.set_aspect("equal")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def plot_groundtruth(table, path, title: str = "") -> None:
    """Bars per method: relevance mass inside the region and AUROC, with the random baseline."""
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    methods = list(table["method"])
    colours = ["grey" if m == "random" else "tab:green" for m in methods]
    for ax, col, label in ((axes[0], "mass_inside", "relevance mass inside region"),
                           (axes[1], "auroc", "AUROC of |map| vs region")):
        ax.barh(methods, table[col], color=colours)
        ax.set_xlabel(label, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_xlim(0, 1)
    if "region_fraction" in table:
        axes[0].axvline(float(table["region_fraction"].mean()), ls="--", c="k", lw=0.8)
    axes[1].axvline(0.5, ls="--", c="k", lw=0.8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def plot_evaluation(randomisation, curves, path, threshold: float = 0.5, title: str = "") -> None:
    """Three panels: rank correlation with the original maps as layers are randomised (from the
    top), and the mean deletion and insertion curves of the concept score, per method."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    cmap = plt.get_cmap("tab10")
    methods = list(dict.fromkeys(curves["method"]))
    colour = {m: ("grey" if m == "random" else cmap(i % 10)) for i, m in enumerate(methods)}
    ax = axes[0]
    if randomisation is not None and len(randomisation):
        for m, df in randomisation.groupby("method", sort=False):
            ax.plot(df["step"], df["spearman"], marker="o", ms=3, label=m, color=colour.get(m))
        steps = randomisation.drop_duplicates("step").sort_values("step")
        ax.set_xticks(steps["step"])
        ax.set_xticklabels(steps["layer"], rotation=60, ha="right", fontsize=6)
        ax.axhline(threshold, ls="--", c="k", lw=0.8)
    ax.set_ylim(-0.1, 1.05)
    ax.set_ylabel("Spearman |map| vs original", fontsize=8)
    ax.set_title("cascading randomisation (from the top)", fontsize=8)
    for ax, kind in ((axes[1], "deletion"), (axes[2], "insertion")):
        for m, df in curves[curves["kind"] == kind].groupby("method", sort=False):
            ax.plot(df["fraction"], df["score"], label=m, color=colour[m],
                    ls="--" if m == "random" else "-")
        ax.set_xlabel(f"fraction of features {'deleted' if kind == 'deletion' else 'inserted'}", fontsize=8)
        ax.set_ylabel("normalised concept score", fontsize=8)
        ax.set_title(f"{kind} (most relevant first)", fontsize=8)
    axes[2].legend(fontsize=6, loc="lower right")
    for ax in axes:
        ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def plot_concept_grid(inputs, maps: dict, row_labels, path, title: str = "",
                      blocks: int | None = None) -> None:
    """Concepts x methods: per concept one image, then its map for every method.

    Many concepts (CelebA's 40) are laid out in ``blocks`` side-by-side groups of rows.
    """
    n, methods = len(inputs), list(maps)
    blocks = blocks or (2 if n > 12 else 1)
    rows, per = math.ceil(n / blocks), 1 + len(methods)
    height = 1.15 * rows + 0.8
    fig, axes = plt.subplots(rows, per * blocks, figsize=(1.15 * per * blocks + 0.5 * blocks, height),
                             squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_frame_on(False)
    for i in range(n):
        r, c0 = i % rows, (i // rows) * per
        img = inputs[i]
        axes[r, c0].imshow(img[..., 0] if img.shape[-1] == 1 else img,
                           cmap="gray" if img.shape[-1] == 1 else None)
        axes[r, c0].set_ylabel(str(row_labels[i]), fontsize=6.5)
        for j, method in enumerate(methods):
            m, lim = clip_map(maps[method][i])
            axes[r, 1 + c0 + j].imshow(m, cmap="bwr", vmin=-lim, vmax=lim)
        if r == 0:
            axes[r, c0].set_title("input", fontsize=7)
            for j, method in enumerate(methods):
                axes[r, 1 + c0 + j].set_title(method.replace("_", "\n"), fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / height))
    save_figure(fig, path, dpi=90)
