"""The render stage: one figure of concept maps per concept."""

from __future__ import annotations

import numpy as np

from ..data.samples import SampleStore
from ..data.grid import pixels_to_spots, read_grid
from ..data.spatial import read_anndata
from ..plotting import plot_image_maps, plot_spatial_maps, save_figure
from ..plotting_spatial import plot_concept_on_tissue
from ..saliency_maps import read_maps


def render(*, samples: str, maps: list, figure: str, concept: str, grid: str | None = None,
           spatial_maps: str | None = None) -> None:
    """One figure per concept: each explained sample beside its map for every method.

    Spatial data (``spatial_maps``: the AnnData of the spatial_maps stage): the decoded
    concept vector, example genes and their maps on the tissue, on the H&E image when
    there is one. With only the spot ``grid``: the maps on the spots' positions.
    """
    if spatial_maps:
        save_figure(plot_concept_on_tissue(read_anndata(spatial_maps, fmt="csm.spatial-maps"), concept),
                    figure)
        return
    per_method, indices = {}, None
    for path in maps:
        r = read_maps(path, concept)
        per_method[r["method"]] = r["maps"]
        indices = r["indices"]
    with SampleStore(samples) as store:
        x = store.read(indices)
        ids = [store.ids[i] for i in indices]
    title = f"concept '{concept}'"
    if grid:
        index, _ = read_grid(grid)
        coords = np.stack([index.col, index.row], axis=1).astype(float)
        fig = plot_spatial_maps(pixels_to_spots(x, index),
                                {m: pixels_to_spots(v, index) for m, v in per_method.items()},
                                coords, ids, title)
    else:
        fig = plot_image_maps(x, per_method, ids, title)
    save_figure(fig, figure)
