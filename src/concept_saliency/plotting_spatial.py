"""Figures on tissue: values and concept maps drawn on the H&E image, or on the spot positions.

:func:`plot_tissue` draws one value per spot (a gene, a concept map: a column of ``obs``
or an array) on the AnnData's tissue. :func:`plot_concept_on_tissue` draws the paper's
figure for one concept from the ``maps.h5ad`` of the spatial_maps stage: the decoded
concept vector and the mean concept map of every method (first row), then for each
example gene its expression and its concept map for every method.
:func:`plot_maps_on_tissue` draws a grid of concept maps (concepts x methods), e.g. the
seeds' consensus maps of the consensus stage. Spots are drawn as
discs of their real diameter (``uns["spatial"][library]["scalefactors"]``), on the
``hires`` image when there is one. Every panel has a colour bar; maps use a diverging
colour map centred on zero, clipped to the 0.5 and 99.5 percentiles. Functions return a
:class:`matplotlib.figure.Figure`; nothing is saved unless asked.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from .data.spatial import map_key
from .plotting import clip_map, new_figure


def tissue_layout(adata):
    """``(coords, image, diameter)``: spot centres and diameter in the drawing's units, and the
    image to draw them on (``None`` without one)."""
    library = adata.uns.get("csm_library_id") or next(iter(adata.uns.get("spatial", {}) or {}), None)
    entry = (adata.uns.get("spatial") or {}).get(library, {}) if library else {}
    scalefactors = entry.get("scalefactors", {})
    images = entry.get("images", {})
    coords = np.asarray(adata.obsm["spatial"], dtype=np.float64)
    diameter = float(scalefactors.get("spot_diameter_fullres", 0) or 0)
    if not diameter:  # half the typical distance to the nearest spot
        from scipy.spatial import cKDTree

        d, _ = cKDTree(coords).query(coords, k=2)
        diameter = float(np.median(d[:, 1])) * 0.5 if len(coords) > 1 else 1.0
    for key in ("hires", "lowres"):
        if key in images:
            scale = float(scalefactors.get(f"tissue_{key}_scalef", 1.0))
            return coords * scale, np.asarray(images[key]), diameter * scale
    return coords, None, diameter


def draw_spots(ax, coords, values, diameter, image=None, cmap="viridis", vmin=None, vmax=None):
    """Spots as discs (data units) coloured by ``values``, over ``image`` when given."""
    from matplotlib.collections import EllipseCollection

    if image is not None:
        ax.imshow(image, alpha=0.9)
    discs = EllipseCollection(np.full(len(coords), diameter), np.full(len(coords), diameter),
                              np.zeros(len(coords)), units="xy", offsets=coords,
                              offset_transform=ax.transData, cmap=cmap, linewidths=0)
    discs.set_array(np.asarray(values, dtype=np.float64))
    discs.set_clim(vmin, vmax)
    ax.add_collection(discs)
    pad = diameter * 1.5
    ax.set_xlim(coords[:, 0].min() - pad, coords[:, 0].max() + pad)
    ax.set_ylim(coords[:, 1].max() + pad, coords[:, 1].min() - pad)  # image convention: y down
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    return discs


def _values(adata, values) -> np.ndarray:
    """One value per spot: an ``obs`` column, a gene (``var_names``: its normalised ``X``), or an array."""
    if isinstance(values, str):
        if values in adata.obs:
            return np.asarray(adata.obs[values], dtype=np.float64)
        if values in adata.var_names:
            column = adata[:, values].X
            return np.asarray(column.toarray() if hasattr(column, "toarray") else column,
                              dtype=np.float64).ravel()
        raise KeyError(f"{values!r} is neither an obs column nor a gene of the AnnData")
    values = np.asarray(values, dtype=np.float64).ravel()
    if len(values) != adata.n_obs:
        raise ValueError(f"{len(values)} values for {adata.n_obs} spots")
    return values


def plot_tissue(adata, values, *, diverging: bool | None = None, title: str | None = None,
                size: float = 4.0, ax=None) -> Figure:
    """``values`` (an ``obs`` column such as ``"csm_penk_vanilla_gradient"``, a gene, or one
    number per spot) on the tissue: spots as discs of their real size, on the H&E image when
    the AnnData has one. ``diverging`` (default: for concept maps, the ``csm_*`` columns other
    than ``*_decoded``): a colour map centred on zero, clipped at the 0.5 and 99.5 percentiles.
    Draws into ``ax`` when given; returns the figure."""
    v = _values(adata, values)
    if diverging is None:
        diverging = isinstance(values, str) and values.startswith("csm_") and not values.endswith("_decoded")
    coords, image, diameter = tissue_layout(adata)
    if ax is None:
        fig = new_figure(size * 1.2, size)
        ax = fig.subplots()
    _spots_with_colorbar(ax, coords, v, diameter, image, diverging)
    ax.set_title(title if title is not None else (values if isinstance(values, str) else ""), fontsize=8)
    return ax.figure


def _spots_with_colorbar(ax, coords, values, diameter, image, diverging: bool) -> None:
    """Spots coloured by ``values`` (a map: diverging, clipped, centred on zero) and a colour bar."""
    if diverging:
        clipped, lim = clip_map(values)
        discs = draw_spots(ax, coords, clipped, diameter, image, "bwr", -lim, lim)
    else:
        discs = draw_spots(ax, coords, values, diameter, image, "viridis")
    cbar = ax.figure.colorbar(discs, ax=ax, fraction=0.046, pad=0.02)
    cbar.ax.tick_params(labelsize=6)


#: the example genes a concept's tissue figure shows (its mean maps average every explained gene)
MAX_EXAMPLE_GENES = 5


def plot_concept_on_tissue(adata, concept: str, title: str = "",
                           max_genes: int = MAX_EXAMPLE_GENES) -> Figure:
    """The figure of one concept: decoded vector, mean maps over every explained gene, then the
    first ``max_genes`` explained genes (the highest-scoring) and their maps."""
    info = adata.uns["csm_concepts"][concept]
    methods = [str(m) for m in info["methods"]]
    explained = [str(g) for g in info["explained"]]
    genes = explained[:max_genes]
    coords, image, diameter = tissue_layout(adata)
    n_rows, n_cols = 1 + len(genes), 1 + len(methods)
    aspect = np.ptp(coords[:, 1]) / max(np.ptp(coords[:, 0]), 1e-9)
    fig = new_figure(2.6 * n_cols, 2.6 * n_rows * min(max(aspect, 0.6), 1.4))
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    x = np.asarray(adata.X)
    gene_pos = {g: i for i, g in enumerate(adata.var_names)}

    def panel(ax, values, diverging):
        _spots_with_colorbar(ax, coords, values, diameter, image, diverging)

    if map_key(concept, "decoded") in adata.obs:
        panel(axes[0, 0], adata.obs[map_key(concept, "decoded")], False)
        axes[0, 0].set_title("decoded concept vector", fontsize=8)
    else:  # a model of the user's own, without its decoder
        axes[0, 0].set_xticks([])
        axes[0, 0].set_yticks([])
        axes[0, 0].text(0.5, 0.5, "no decoder\n(give the model's\ndecoder_file)", ha="center",
                        va="center", fontsize=7, transform=axes[0, 0].transAxes)
    axes[0, 0].set_ylabel("concept", fontsize=8)
    for j, method in enumerate(methods):
        panel(axes[0, 1 + j], adata.obs[map_key(concept, method)], True)
        axes[0, 1 + j].set_title(f"{method.replace('_', ' ')}\n(mean over {len(explained)} genes)", fontsize=7)
    for i, gene in enumerate(genes, start=1):
        panel(axes[i, 0], x[:, gene_pos[gene]], False)
        axes[i, 0].set_ylabel(gene, fontsize=8)
        if i == 1:
            axes[i, 0].set_title("expression (normalised)", fontsize=8)
        for j, method in enumerate(methods):
            panel(axes[i, 1 + j], adata.obsm[map_key(concept, method)][gene], True)
    kind = str(info.get("kind", ""))
    fig.suptitle(title or f"concept '{concept}' ({kind.replace('_', ' ')}, "
                          f"{len(info['members'])} genes)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_maps_on_tissue(adata, concepts: list[str], methods: list[str], title: str = "") -> Figure:
    """One panel per concept (rows) and method (columns): the map ``obs["csm_<concept>_<method>"]``
    on the tissue, diverging and clipped as every map."""
    coords, image, diameter = tissue_layout(adata)
    aspect = np.ptp(coords[:, 1]) / max(np.ptp(coords[:, 0]), 1e-9)
    fig = new_figure(2.4 * len(methods), 2.4 * len(concepts) * min(max(aspect, 0.6), 1.4))
    axes = fig.subplots(len(concepts), len(methods), squeeze=False)
    for i, concept in enumerate(concepts):
        for j, method in enumerate(methods):
            _spots_with_colorbar(axes[i, j], coords, _values(adata, map_key(concept, method)), diameter,
                                 image, True)
            if i == 0:
                axes[i, j].set_title(method.replace("_", " "), fontsize=8)
        axes[i, 0].set_ylabel(concept, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
