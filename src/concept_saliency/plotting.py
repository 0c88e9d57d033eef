"""Figures: concept maps on images (alone or blended over the input), and the workflow's
diagnostics (loss curves, score histograms, evaluation).

Every function returns a :class:`matplotlib.figure.Figure` (shown inline when it is the
last value of a Jupyter cell) or draws into the ``ax`` it is given; nothing here selects
a Matplotlib backend or uses pyplot's global state, and nothing is saved unless asked
(:func:`save_figure`). The workflow's figures are made by these same functions.

Maps are channel-summed and, by default, drawn as the paper did: clipped to their 0.5 and
99.5 percentiles, with a diverging colour map centred on zero (red raises the concept
score, blue lowers it). :func:`plot_attribution` offers the usual variants, as Captum's
``visualize_image_attr``: the signed map, its positive or negative part or its absolute
value, alone or blended over the input, with or without a colour bar.
"""

from __future__ import annotations

import math
import os

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from .artifacts import atomic_path

CLIP = (0.5, 99.5)
SIGNS = ("all", "positive", "negative", "absolute")


def new_figure(width: float, height: float) -> Figure:
    """A figure that belongs to no pyplot state (freed with its last reference)."""
    _show_figures_inline()
    return Figure(figsize=(width, height))


def _show_figures_inline() -> None:
    """In IPython (Jupyter), display a returned figure as PNG: IPython does so only for pyplot's
    figures once its inline backend is set up, and these figures are not pyplot's."""
    import sys

    ipython = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    if ipython is None:
        return
    png = ipython.display_formatter.formatters["image/png"]
    if Figure not in png.type_printers:
        from IPython.core.pylabtools import print_figure

        png.for_type(Figure, lambda fig: print_figure(fig, "png", bbox_inches="tight"))


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 110) -> None:
    """Write ``fig`` as PNG to ``path`` (atomically)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png",
                    metadata={"Software": "concept-saliency"})


def clip_map(m: np.ndarray, clip: tuple[float, float] = CLIP) -> tuple[np.ndarray, float]:
    """Channel-summed map clipped at the given percentiles; returns it and a symmetric limit."""
    m = np.asarray(m, dtype=np.float64)
    if m.ndim == 3:
        m = m.sum(axis=-1)
    lo, hi = np.percentile(m, clip)
    m = np.clip(m, lo, hi)
    lim = max(abs(lo), abs(hi)) or 1.0
    return m, lim


def scaled_attribution(attribution: np.ndarray, sign: str = "all",
                       clip: tuple[float, float] = CLIP) -> tuple[np.ndarray, float, float, str]:
    """A map ready to draw: ``(values, vmin, vmax, colour map)``.

    ``sign``: ``"all"`` (signed, clipped at the ``clip`` percentiles, symmetric limits,
    diverging colours), ``"positive"`` or ``"negative"`` (that part only, as positive values),
    ``"absolute"`` (``|map|``); the one-sided ones are clipped at the upper ``clip`` percentile.
    Channels are summed first (signed), so a pixel's channels can cancel.
    """
    if sign not in SIGNS:
        raise ValueError(f"sign {sign!r}: use one of {', '.join(SIGNS)}")
    m = np.asarray(attribution, dtype=np.float64)
    if m.ndim == 3:
        m = m.sum(axis=-1)
    if sign == "all":
        m, lim = clip_map(m, clip)
        return m, -lim, lim, "bwr"
    part = {"positive": np.maximum(m, 0), "negative": np.maximum(-m, 0), "absolute": np.abs(m)}[sign]
    top = float(np.percentile(part, clip[1])) or float(part.max()) or 1.0
    cmap = {"positive": "Reds", "negative": "Blues", "absolute": "Greens"}[sign]
    return np.clip(part, 0, top), 0.0, top, cmap


def _show_image(ax, image, alpha: float = 1.0, grey: bool = False) -> None:
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if grey and img.ndim == 3:
        img = img.mean(axis=-1)
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, alpha=alpha,
              vmin=0 if img.ndim == 2 else None, vmax=1 if img.ndim == 2 else None)


def draw_attribution(ax, attribution, image=None, *, sign: str = "all", overlay: bool = False,
                     alpha: float = 0.55, clip: tuple[float, float] = CLIP, colorbar: bool = False,
                     title: str | None = None):
    """Draw one map into ``ax``: alone, or (``overlay=True``) blended over ``image`` shown in grey.
    Returns the map's image (for a colour bar)."""
    values, vmin, vmax, cmap = scaled_attribution(attribution, sign, clip)
    if overlay:
        if image is None:
            raise ValueError("overlay=True needs the input image")
        _show_image(ax, image, grey=True)
    shown = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, alpha=alpha if overlay else 1.0)
    if colorbar:
        cbar = ax.figure.colorbar(shown, ax=ax, fraction=0.046, pad=0.02)
        cbar.ax.tick_params(labelsize=6)
    if title:
        ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    return shown


def plot_attribution(attribution, image=None, *, sign: str = "all", overlay: bool = True,
                     alpha: float = 0.55, clip: tuple[float, float] = CLIP, colorbar: bool = True,
                     title: str | None = None, size: float = 3.0, ax=None) -> Figure:
    """One concept saliency map, blended over its input ``image`` (``overlay=True``, the default
    when an image is given) or alone; see :func:`scaled_attribution` for ``sign`` and ``clip``.
    Draws into ``ax`` when given; returns the figure."""
    if ax is None:
        fig = new_figure(size * 1.15, size)
        ax = fig.subplots()
    draw_attribution(ax, attribution, image, sign=sign, overlay=overlay and image is not None,
                     alpha=alpha, clip=clip, colorbar=colorbar, title=title)
    return ax.figure


def plot_image_maps(inputs, maps: dict, sample_ids=None, title: str = "", *, sign: str = "all",
                    overlay: bool = False, clip: tuple[float, float] = CLIP) -> Figure:
    """Rows: samples; columns: the input, then the map of every method (``maps``: method -> maps
    with the shape of ``inputs``), alone or blended over the input (``overlay``)."""
    n, methods = len(inputs), list(maps)
    sample_ids = list(range(n)) if sample_ids is None else sample_ids
    fig = new_figure(1.6 * (1 + len(methods)), 1.7 * n)
    axes = fig.subplots(n, 1 + len(methods), squeeze=False)
    for i in range(n):
        _show_image(axes[i, 0], inputs[i])
        axes[i, 0].set_ylabel(str(sample_ids[i]), fontsize=6)
        for j, method in enumerate(methods):
            draw_attribution(axes[i, 1 + j], maps[method][i], inputs[i], sign=sign, overlay=overlay,
                             clip=clip, title=method.replace("_", "\n") if i == 0 else None)
        if i == 0:
            axes[i, 0].set_title("input", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_history(history, title: str = "") -> Figure:
    """Training and validation loss per epoch (a ``history.csv`` table)."""
    fig = new_figure(5, 3.2)
    ax = fig.subplots()
    for col, style in (("loss", "-"), ("val_loss", "--")):
        if col in history:
            ax.plot(history["epoch"], history[col], style, marker="o", ms=3, label=col)
    ax.set_xlabel("epoch")
    ax.set_ylabel("BCE + weighted KL")
    ax.set_title(title, fontsize=9)
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def plot_score_histograms(scores, positives, names, aurocs, title: str = "") -> Figure:
    """One panel per concept: scores of samples with vs without it.

    ``scores[k]`` and ``positives[k]`` are the scores and labels shown for concept k.
    """
    k = len(names)
    cols = min(4, k)
    rows = math.ceil(k / cols)
    fig = new_figure(3.0 * cols, 2.2 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
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
    return fig


def plot_spatial_maps(expression, maps: dict, coords, sample_ids, title: str = "") -> Figure:
    """Like :func:`plot_image_maps`, drawn on the tissue spots (``coords``: (spots, 2) x, y)."""
    n, methods = len(expression), list(maps)
    fig = new_figure(2.0 * (1 + len(methods)), 1.9 * n)
    axes = fig.subplots(n, 1 + len(methods), squeeze=False)
    x, y = coords[:, 0], coords[:, 1]
    size = max(4.0, 900.0 / max(len(x), 1))
    for i in range(n):
        sc = axes[i, 0].scatter(x, y, c=expression[i], s=size, cmap="viridis")
        axes[i, 0].set_ylabel(str(sample_ids[i]), fontsize=6)
        if i == 0:
            axes[i, 0].set_title("expression", fontsize=7)
        for j, method in enumerate(methods):
            v, lim = clip_map(maps[method][i])
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
    return fig


def plot_evaluation(randomisation, curves, threshold: float = 0.5, title: str = "") -> Figure:
    """Three panels: rank correlation with the original maps as layers are randomised (from the
    top), and the mean deletion and insertion curves of the concept score, per method."""
    fig = new_figure(13, 3.6)
    axes = fig.subplots(1, 3)
    cmap = colormaps["tab10"]
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
    return fig


def plot_concept_grid(inputs, maps: dict, row_labels, title: str = "",
                      blocks: int | None = None) -> Figure:
    """Concepts x methods: per concept one image, then its map for every method.

    Many concepts (CelebA's 40) are laid out in ``blocks`` side-by-side groups of rows.
    """
    n, methods = len(inputs), list(maps)
    blocks = blocks or (2 if n > 12 else 1)
    rows, per = math.ceil(n / blocks), 1 + len(methods)
    height = 1.15 * rows + 0.8
    fig = new_figure(1.15 * per * blocks + 0.5 * blocks, height)
    axes = fig.subplots(rows, per * blocks, squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_frame_on(False)
    for i in range(n):
        r, c0 = i % rows, (i // rows) * per
        _show_image(axes[r, c0], inputs[i])
        axes[r, c0].set_ylabel(str(row_labels[i]), fontsize=6.5)
        for j, method in enumerate(methods):
            draw_attribution(axes[r, 1 + c0 + j], maps[method][i])
        if r == 0:
            axes[r, c0].set_title("input", fontsize=7)
            for j, method in enumerate(methods):
                axes[r, 1 + c0 + j].set_title(method.replace("_", "\n"), fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / height))
    return fig


def _heatmap(ax, values: np.ndarray, rows, cols, vmin, vmax, cmap, fmt="{:.2f}", outline=None,
             title: str = "") -> None:
    shown = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels(cols, rotation=60, ha="right", fontsize=6)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows, fontsize=6)
    if values.size <= 400:
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=5)
    if outline is not None:
        from matplotlib.patches import Rectangle

        for i, j in zip(*np.nonzero(outline)):
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=1.2, ec="k"))
    ax.set_title(title, fontsize=8)
    ax.figure.colorbar(shown, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)


def plot_localisation(table, title: str = "", last: tuple = ()) -> Figure:
    """Where the maps point (the localise stage's table). Tissue (every concept against every
    region): per method, the AUROC of each concept's map for each region, its own region
    outlined. Images (each concept against its own region): the mass ratio and the share of
    maps peaking inside, per method and concept. The methods in ``last`` (the references) come
    last."""
    methods = list(dict.fromkeys(table["method"]))
    methods = [m for m in methods if m not in last] + [m for m in last if m in methods]
    concepts = list(dict.fromkeys(table["concept"]))
    per_concept = table.groupby("concept")["region"].nunique().max()
    if per_concept > 1:
        regions = sorted(set(table["region"]))
        cols = min(4, len(methods))
        rows_n = math.ceil(len(methods) / cols)
        fig = new_figure(0.45 * len(regions) * cols + 2.5 * cols, 0.3 * len(concepts) * rows_n + 1.5 * rows_n)
        axes = fig.subplots(rows_n, cols, squeeze=False)
        for ax, method in zip(axes.flat, methods):
            t = table[table["method"] == method].pivot_table(index="concept", columns="region", values="auroc")
            t = t.reindex(index=concepts, columns=regions)
            own = table[(table["method"] == method) & (table["own"] > 0)]
            outline = np.zeros(t.shape, dtype=bool)
            for c, r in zip(own["concept"], own["region"]):
                outline[concepts.index(c), regions.index(r)] = True
            _heatmap(ax, t.to_numpy(), concepts, regions, 0, 1, "RdBu_r", outline=outline,
                     title=f"{method}: AUROC of the map per region")
        for ax in list(axes.flat)[len(methods):]:
            ax.axis("off")
    else:
        fig = new_figure(2 * (0.45 * len(concepts) + 2.5), 0.35 * len(methods) + 1.8)
        axes = fig.subplots(1, 2, squeeze=False)[0]
        for ax, metric, vmax, label in ((axes[0], "mass_ratio", None, "mass ratio (1 = uniform)"),
                                        (axes[1], "peak_in_region", 1.0, "maps peaking inside")):
            t = table.pivot_table(index="method", columns="concept", values=metric).reindex(
                index=methods, columns=concepts)
            values = t.to_numpy(dtype=float)
            _heatmap(ax, values, methods, [f"{c}\n({r})" for c, r in zip(concepts, _own_region(table, concepts))],
                     0, vmax if vmax else max(2.0, float(np.nanmax(values)) if np.isfinite(values).any() else 2.0),
                     "viridis", title=label)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def _own_region(table, concepts) -> list[str]:
    first = table.drop_duplicates("concept").set_index("concept")["region"]
    return [str(first.get(c, "")) for c in concepts]


def plot_stability(table, threshold: float = 0.5, title: str = "") -> Figure:
    """Per method and concept: the rank correlation of the maps of the same samples across training
    seeds (cells under ``threshold`` are flagged: those maps change with the seed)."""
    methods = list(dict.fromkeys(table["method"]))
    concepts = list(dict.fromkeys(table["concept"]))
    values = table.pivot_table(index="method", columns="concept", values="map_spearman").reindex(
        index=methods, columns=concepts).to_numpy(dtype=float)
    fig = new_figure(0.45 * len(concepts) + 3.0, 0.35 * len(methods) + 1.8)
    ax = fig.subplots()
    _heatmap(ax, values, methods, concepts, -1, 1, "RdBu_r", outline=values < threshold,
             title=f"rank correlation of maps across seeds (outlined: below {threshold:g})")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
