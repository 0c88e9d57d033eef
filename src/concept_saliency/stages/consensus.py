"""The consensus stage: a tissue's concept maps averaged over the seeds of one model.

Each seed's model draws every concept on the spots (the mean map of its explained member
genes, as the spatial_maps and localise stages do). What the trainings agree on is the
evidence; this stage averages the seeds' concept maps (:func:`~concept_saliency.stability.consensus_map`),
writes them in an AnnData like ``maps.h5ad`` (``obs["csm_<concept>_<method>"]``), draws them on
the tissue and, where the spots are annotated, scores them against the regions beside each
seed's own map.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..artifacts import write_tsv
from ..data.grid import concept_spot_map, pixels_to_spots, read_grid
from ..data.spatial import map_key, read_anndata, write_anndata
from ..errors import ArtifactError
from ..localisation import score_against_regions
from ..plotting import save_figure
from ..plotting_spatial import plot_maps_on_tissue
from ..saliency_maps import read_maps, read_method
from ..stability import consensus_map, map_agreement, read_seed_concepts

log = logging.getLogger("concept_saliency")
FORMAT = "csm.consensus-maps"
COLUMNS = ["concept", "method", "n_seeds", "seed_spearman", "own_region", "own_auroc", "own_rank",
           "own_auroc_seed_min", "own_auroc_seed_max", "first_region", "first_auroc"]


def consensus(*, anndata: str, grid: str, concepts: list, maps: list, consensus_maps: str, table: str,
              figure: str, regions: dict | None = None) -> dict:
    """``consensus_maps``: the prepared ``anndata`` with every concept's map of every method
    averaged over the seeds (``concepts``: each seed's ``concepts.h5``; ``maps``: each seed's
    saliency files, found by their run folder). ``table``: per concept and method, how alike
    the seeds' concept maps are (``seed_spearman``) and, with an annotated ``grid``, the
    region the consensus ranks first and its own region's (``regions``: concept -> region)
    AUROC and rank, beside the range of the seeds' own AUROCs."""
    index, labels = read_grid(grid)
    runs = [Path(path).parent.parent for path in concepts]
    sets = read_seed_concepts(concepts)
    first = sets[0]
    files: dict[Path, dict[str, str]] = {run: {} for run in runs}
    for path in maps:
        files[Path(path).parent.parent][read_method(path)] = path
    methods = list(files[runs[0]])
    if any(list(files[run]) != methods for run in runs):
        raise ArtifactError(f"the seeds' models of {runs[0]} do not have maps of the same methods; "
                            f"rerun the saliency stage of every seed")
    adata = read_anndata(anndata)
    if list(adata.obs_names) != list(index.spots):
        raise ArtifactError(f"{anndata} and {grid} do not describe the same spots; rerun the workflow "
                            f"from prepare_spatial")
    rows = []
    for k, name in enumerate(first.names):
        for method in methods:
            per_seed = []
            for run, cs in zip(runs, sets):
                r = read_maps(files[run][method], name)
                per_seed.append(concept_spot_map(pixels_to_spots(r["maps"], index), r["indices"], cs.positives[k]))
            mean = consensus_map(per_seed)
            adata.obs[map_key(name, method)] = mean.astype(np.float32)
            row = {"concept": name, "method": method, "n_seeds": len(runs),
                   "seed_spearman": map_agreement([m[None] for m in per_seed])["map_spearman"]}
            if labels is not None:
                row.update(_against_regions(mean, per_seed, labels, (regions or {}).get(name)))
            rows.append(row)
    result = pd.DataFrame(rows).reindex(columns=COLUMNS)
    adata.uns["csm_consensus"] = {"runs": [run.name for run in runs], "methods": methods,
                                  "concepts": list(first.names)}
    write_anndata(adata, consensus_maps, fmt=FORMAT)
    write_tsv(result, table)
    save_figure(plot_maps_on_tissue(adata, list(first.names), methods,
                                    title=f"concept maps averaged over {len(runs)} seeds"), figure)
    for _, row in result.dropna(subset=["own_auroc"]).iterrows():
        log.info("%-22s %-20s consensus AUROC on %s %.3f (rank %d; seeds %.3f-%.3f)", row["method"],
                 row["concept"], row["own_region"], row["own_auroc"], row["own_rank"],
                 row["own_auroc_seed_min"], row["own_auroc_seed_max"])
    return {"seeds": len(runs), "concepts": len(first.names), "methods": len(methods)}


def _against_regions(mean: np.ndarray, per_seed: list, labels, own: str | None) -> dict:
    """Where the consensus map points (the region it ranks first) and, for a concept with its
    own region, that region's AUROC and rank, with the seeds' own AUROCs beside it."""
    scored = score_against_regions(mean, labels).set_index("region")
    top = scored["auroc"].idxmax()
    row = {"first_region": top, "first_auroc": float(scored.loc[top, "auroc"])}
    if own in scored.index:
        seeds = [score_against_regions(m, labels).set_index("region").loc[own, "auroc"] for m in per_seed]
        row.update(own_region=own, own_auroc=float(scored.loc[own, "auroc"]),
                   own_rank=int(scored.loc[own, "rank"]), own_auroc_seed_min=float(np.min(seeds)),
                   own_auroc_seed_max=float(np.max(seeds)))
    return row
