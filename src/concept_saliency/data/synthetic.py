"""Synthetic demo data with known ground truth.

Two generators, both deterministic given a seed:

- :func:`make_shapes`: small RGB scenes on a noisy background; each binary
  attribute is drawn in its own quadrant, so the pixel mask of every attribute
  in every image is known.
- :func:`make_layered_tissue`: a spatial-transcriptomics section of concentric
  layers on a spot grid with Poisson counts; gene groups follow one layer each,
  plus housekeeping genes (everywhere) and noise genes (no spatial pattern).

The ``write_*`` functions store them in the same raw formats real data comes
in (a folder of PNG images with an attribute table; an ST count matrix with
``XxY`` spot names), so the demo runs through the same stages as real data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..artifacts import atomic_path, create_h5

SHAPE_ATTRIBUTES = ("red_square", "blue_disc", "stripes", "yellow_triangle")


@dataclass
class ShapesData:
    images: np.ndarray  # (N, S, S, 3) uint8
    labels: np.ndarray  # (N, A) bool
    masks: np.ndarray  # (N, A, S, S) bool: where each attribute is drawn
    names: tuple[str, ...]
    ids: list[str]


def make_shapes(n: int, size: int = 32, noise: float = 0.08, prevalence: float = 0.5,
                seed: int = 0) -> ShapesData:
    """Scenes with four independent attributes, each in its own quadrant.

    - ``red_square``: a filled red square, top-left;
    - ``blue_disc``: a filled blue disc, top-right;
    - ``stripes``: a patch of horizontal green and black stripes (texture), bottom-left;
    - ``yellow_triangle``: a filled yellow triangle, bottom-right.

    Object size and position jitter within the quadrant; the background is a
    grey ramp with a slight random tint plus Gaussian noise of s.d. ``noise``.
    """
    if size < 16 or size % 4:
        raise ValueError("size must be a multiple of 4 and at least 16")
    rng = np.random.default_rng(seed)
    a = len(SHAPE_ATTRIBUTES)
    labels = rng.random((n, a)) < prevalence
    masks = np.zeros((n, a, size, size), dtype=bool)
    half = size // 2
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)

    # background: a grey ramp with a slight random tint, plus pixel noise
    grey0 = rng.uniform(0.3, 0.5, (n, 1, 1, 1))
    grey1 = rng.uniform(0.3, 0.5, (n, 1, 1, 1))
    tint = rng.uniform(-0.04, 0.04, (n, 1, 1, 3))
    angle = rng.uniform(0, 2 * np.pi, (n, 1, 1, 1))
    ramp = ((np.cos(angle) * xx[None, :, :, None] + np.sin(angle) * yy[None, :, :, None]) / size
            + 1.0) / 2.0
    img = grey0 * (1 - ramp) + grey1 * ramp + tint
    img = img + rng.normal(0, noise, img.shape)

    colours = {
        "red_square": (0.9, 0.1, 0.1),
        "blue_disc": (0.1, 0.2, 0.95),
        "yellow_triangle": (0.95, 0.9, 0.1),
    }
    offsets = [(0, 0), (0, half), (half, 0), (half, half)]  # (row, col) of each quadrant
    for i in range(n):
        for k, name in enumerate(SHAPE_ATTRIBUTES):
            if not labels[i, k]:
                continue
            r0, c0_ = offsets[k]
            ext = int(rng.integers(half // 2, half - 3))  # object extent in pixels
            top = r0 + int(rng.integers(1, half - ext))
            left = c0_ + int(rng.integers(1, half - ext))
            ys, xs = yy - top, xx - left
            inside_box = (ys >= 0) & (ys < ext) & (xs >= 0) & (xs < ext)
            if name == "red_square":
                m = inside_box
            elif name == "blue_disc":
                r = (ext - 1) / 2
                m = (ys - r) ** 2 + (xs - r) ** 2 <= r * r + 0.5
            elif name == "stripes":
                m = inside_box
            else:  # triangle: apex at the top centre
                m = inside_box & (np.abs(xs - (ext - 1) / 2) <= ys / 2 + 0.5)
            masks[i, k] = m
            if name == "stripes":  # two green rows, one black row
                green = (ys[m] % 3 != 2)[:, None]
                img[i][m] = np.where(green, (0.15, 0.8, 0.2), (0.05, 0.05, 0.05))
            else:
                img[i][m] = colours[name]
    images = np.clip(np.round(img * 255), 0, 255).astype(np.uint8)
    width = len(str(n))
    ids = [f"shape_{i + 1:0{width}d}" for i in range(n)]
    return ShapesData(images, labels, masks, SHAPE_ATTRIBUTES, ids)


def write_shapes(data: ShapesData, image_dir: str | os.PathLike, attributes_tsv: str | os.PathLike,
                 masks_h5: str | os.PathLike) -> None:
    """Write PNG images, a CelebA-like attribute table (-1/1) and the ground-truth masks."""
    from PIL import Image
    import pandas as pd

    image_dir = Path(image_dir)
    with atomic_path(image_dir, suffix="") as tmp_dir:
        tmp_dir.mkdir(parents=True)
        for sid, img in zip(data.ids, data.images):
            Image.fromarray(img).save(tmp_dir / f"{sid}.png")
    table = pd.DataFrame(np.where(data.labels, 1, -1), columns=list(data.names))
    table.insert(0, "image_id", [f"{s}.png" for s in data.ids])
    with atomic_path(attributes_tsv) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    write_masks(masks_h5, data.masks, data.ids, data.names)


def write_masks(path, masks: np.ndarray, ids, names) -> None:
    """Ground-truth regions: ``masks`` (N, A, H, W) bool, one plane per concept name."""
    import h5py

    with create_h5(path, "csm.masks") as f:
        f.create_dataset("masks", data=masks, compression="lzf", chunks=True)
        f.create_dataset("ids", data=np.asarray(ids, dtype=object), dtype=h5py.string_dtype())
        f.create_dataset("names", data=np.asarray(names, dtype=object), dtype=h5py.string_dtype())


# ----------------------------------------------------------- spatial transcriptomics


@dataclass
class TissueData:
    counts: np.ndarray  # (spots, genes) int
    spot_x: np.ndarray  # array coordinates (with sub-spot jitter, like ST data)
    spot_y: np.ndarray
    layer: np.ndarray  # (spots,) int layer of each spot, 0 = centre
    genes: list[str]
    gene_layer: np.ndarray  # (genes,) layer a gene follows, -1 housekeeping, -2 noise

    @property
    def spot_names(self) -> list[str]:
        return [f"{x:.3f}x{y:.3f}" for x, y in zip(self.spot_x, self.spot_y)]


def make_layered_tissue(n_layers: int = 4, genes_per_layer: int = 60, n_housekeeping: int = 40,
                        n_noise: int = 200, grid: tuple[int, int] = (22, 18),
                        depth: float = 30.0, fold_change: float = 6.0,
                        seed: int = 0) -> TissueData:
    """A tissue of concentric elliptical layers on a ``grid = (columns, rows)`` of spots.

    Spots inside the ellipse are kept; layer ``k`` spans normalised radii
    ``[k/L, (k+1)/L)``. Counts are Poisson: ``depth * size_factor * rate`` with
    the rate of a layer gene ``fold_change`` times higher inside its layer.
    """
    rng = np.random.default_rng(seed)
    cols, rows = grid
    gx, gy = np.meshgrid(np.arange(cols), np.arange(rows))
    cx, cy = (cols - 1) / 2, (rows - 1) / 2
    r = np.sqrt(((gx - cx) / (cols / 2)) ** 2 + ((gy - cy) / (rows / 2)) ** 2)
    inside = r < 0.999
    r = r[inside]
    layer = np.minimum((r * n_layers).astype(int), n_layers - 1)
    # ST array coordinates start near 1 and carry sub-spot offsets
    spot_x = gx[inside] + 2.0 + rng.uniform(-0.12, 0.12, layer.shape)
    spot_y = gy[inside] + 2.0 + rng.uniform(-0.12, 0.12, layer.shape)

    genes, gene_layer = [], []
    for k in range(n_layers):
        genes += [f"Layer{k + 1}g{j + 1:03d}" for j in range(genes_per_layer)]
        gene_layer += [k] * genes_per_layer
    genes += [f"Hk{j + 1:03d}" for j in range(n_housekeeping)]
    gene_layer += [-1] * n_housekeeping
    genes += [f"Noise{j + 1:03d}" for j in range(n_noise)]
    gene_layer += [-2] * n_noise
    gene_layer = np.array(gene_layer)

    n_spots, n_genes = len(layer), len(genes)
    base = rng.lognormal(mean=-1.0, sigma=0.6, size=n_genes)  # gene abundance
    rate = np.ones((n_spots, n_genes))
    for g in range(n_genes):
        if gene_layer[g] >= 0:
            rate[:, g] = np.where(layer == gene_layer[g], fold_change, 1.0)
        elif gene_layer[g] == -2:
            rate[:, g] = rng.gamma(shape=1.5, scale=1 / 1.5, size=n_spots)
    size_factor = rng.lognormal(0.0, 0.25, size=n_spots)
    counts = rng.poisson(depth * size_factor[:, None] * base[None, :] * rate)
    return TissueData(counts.astype(np.int64), spot_x, spot_y, layer, genes, gene_layer)


def write_tissue(data: TissueData, counts_tsv: str | os.PathLike, spots_tsv: str | os.PathLike) -> None:
    """Write an ST count matrix (spots x genes, ``XxY`` row names) and the spot layers."""
    import pandas as pd

    names = data.spot_names
    counts = pd.DataFrame(data.counts, index=names, columns=data.genes)
    with atomic_path(counts_tsv) as tmp:
        counts.to_csv(tmp, sep="\t", compression="gzip" if str(counts_tsv).endswith(".gz") else None)
    spots = pd.DataFrame({"spot": names, "region": [f"layer{k + 1}" for k in data.layer]})
    with atomic_path(spots_tsv) as tmp:
        spots.to_csv(tmp, sep="\t", index=False)
