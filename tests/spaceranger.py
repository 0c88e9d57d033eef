"""Small but real Space Ranger ``outs`` folders for the tests, in the file formats Space Ranger writes.

- ``filtered_feature_bc_matrix.h5`` / ``raw_feature_bc_matrix.h5``: the 10x HDF5 feature-barcode
  matrix (format version 2, as Cell Ranger 3+ and every Space Ranger write it): ``matrix/barcodes``,
  ``data``, ``indices``, ``indptr`` (compressed sparse columns, one column per barcode), ``shape``
  (features, barcodes) and ``features/{id, name, feature_type, genome, _all_tag_keys}``, fixed-length
  byte strings; root attributes ``library_ids``, ``chemistry_description``, ``software_version``,
  ``filetype = "matrix"``, ``version = 2``;
- ``spatial/tissue_positions.csv`` (Space Ranger 2 and later: a header line) or
  ``spatial/tissue_positions_list.csv`` (Space Ranger 1: none): barcode, in_tissue, array_row,
  array_col, pxl_row_in_fullres, pxl_col_in_fullres, one line for every spot of the slide;
- ``spatial/scalefactors_json.json`` and the ``tissue_hires_image.png`` / ``tissue_lowres_image.png``
  made from a full-resolution picture by those scale factors.

The array is a window of Visium's hexagonal lattice (rows 0-77, columns 0-127, ``row + col`` even):
a spot's centre is ``x = X0 + PITCH_X * col``, ``y = Y0 + PITCH_Y * row`` full-resolution pixels
(50 um a column step and 86.6 um a row step at 2 pixels per um, as on a real slide), so neighbours
in one row are 100 um apart and the six neighbours of a spot are at the same distance.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PITCH_X = 100.0  # full-resolution pixels between array columns (50 um at 2 px/um)
PITCH_Y = 100.0 * np.sqrt(3)  # between array rows (86.6 um)
X0, Y0 = -4600.0, -4800.0  # so that the window's spots lie inside the picture
SPOT_DIAMETER = 110.0  # 55 um
FULLRES = (3000, 4000)  # (H, W) of the full-resolution picture (not written, as Space Ranger's is not)
HIRES_SCALEF, LOWRES_SCALEF = 0.5, 0.15
HEADER = ("barcode", "in_tissue", "array_row", "array_col", "pxl_row_in_fullres", "pxl_col_in_fullres")
GREEN = (0, 200, 0)  # the planted disc on the H&E


def lattice(rows=range(78), cols=range(128)) -> np.ndarray:
    """``(n, 2)`` (array_row, array_col) of Visium's hexagonal lattice within ``rows`` x ``cols``."""
    return np.array([(r, c) for r in rows for c in cols if (r + c) % 2 == 0], dtype=np.int64)


def barcode(i: int) -> str:
    """A 16-base barcode with Space Ranger's gem-group suffix, distinct for each ``i``."""
    bases = "ACGT"
    return "".join(bases[(i >> (2 * k)) & 3] for k in range(16)) + "-1"


def spot_pixels(rowcol: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(pxl_row_in_fullres, pxl_col_in_fullres)`` of every spot: y and x of its centre."""
    rowcol = np.asarray(rowcol, dtype=np.float64)
    return Y0 + PITCH_Y * rowcol[:, 0], X0 + PITCH_X * rowcol[:, 1]


@dataclass
class Slide:
    """What a test folder holds: every spot of the window, which are under the tissue, the genes
    and the counts (spots under the tissue x genes)."""

    rowcol: np.ndarray  # (spots, 2) array_row, array_col
    in_tissue: np.ndarray  # (spots,) bool
    genes: list[str]
    gene_ids: list[str]
    counts: np.ndarray  # (spots, genes) int, every spot of the window (the raw matrix)
    barcodes: list[str] = field(default_factory=list)

    def __post_init__(self):
        if not self.barcodes:
            self.barcodes = [barcode(i) for i in range(len(self.rowcol))]

    @property
    def pixels(self) -> tuple[np.ndarray, np.ndarray]:
        return spot_pixels(self.rowcol)


def planted_slide(rows=range(30, 42), cols=range(50, 82), n_genes=60, seed=0) -> Slide:
    """A window of the lattice (12 x 32 positions: 192 spots) with genes planted on known spots.

    ``DISC``: only on the spots within 260 um (full-resolution distance 520) of the spot at
    array (35, 61); ``LINE``: only on array row 38; ``EDGE``: only on the spots of column 50-51
    (the window's left edge). The rest: ``G001``... with Poisson counts of random levels, some
    named alike (``DUP`` twice, two Ensembl ids). The spots of the top-right corner (row < 32 and
    col > 76) lie outside the tissue.
    """
    rng = np.random.default_rng(seed)
    rowcol = lattice(rows, cols)
    y, x = spot_pixels(rowcol)
    cy, cx = spot_pixels(np.array([[35, 61]]))
    disc = np.hypot(y - cy[0], x - cx[0]) <= 520
    line = rowcol[:, 0] == 38
    edge = rowcol[:, 1] <= 51
    in_tissue = ~((rowcol[:, 0] < 32) & (rowcol[:, 1] > 76))
    genes = ["DISC", "LINE", "EDGE", "DUP", "DUP"] + [f"G{i:03d}" for i in range(1, n_genes - 4)]
    counts = rng.poisson(rng.uniform(0.5, 6, len(genes)), size=(len(rowcol), len(genes)))
    counts[:, 0] = np.where(disc, 20 + rng.poisson(5, len(rowcol)), 0)
    counts[:, 1] = np.where(line, 15 + rng.poisson(5, len(rowcol)), 0)
    counts[:, 2] = np.where(edge, 10 + rng.poisson(5, len(rowcol)), 0)
    gene_ids = [f"ENSG{j:011d}" for j in range(len(genes))]
    return Slide(rowcol, in_tissue, genes, gene_ids, counts.astype(np.int64))


def _fixed(values) -> np.ndarray:
    """Fixed-length byte strings, as 10x writes them."""
    encoded = [str(v).encode() for v in values]
    return np.array(encoded, dtype=f"S{max(1, max(map(len, encoded), default=1))}")


def write_matrix(path: Path, slide: Slide, spots: np.ndarray, library_id: str | None = "slide1") -> Path:
    """A 10x HDF5 feature-barcode matrix of the ``spots`` (a mask over the slide's spots)."""
    import h5py
    import scipy.sparse as sp

    csc = sp.csc_matrix(slide.counts[spots].T.astype(np.int32))  # features x barcodes
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        m = f.create_group("matrix")
        m.create_dataset("barcodes", data=_fixed(np.asarray(slide.barcodes)[spots]))
        m.create_dataset("data", data=csc.data.astype(np.int32))
        m.create_dataset("indices", data=csc.indices.astype(np.int64))
        m.create_dataset("indptr", data=csc.indptr.astype(np.int64))
        m.create_dataset("shape", data=np.array(csc.shape, dtype=np.int32))
        feats = m.create_group("features")
        feats.create_dataset("id", data=_fixed(slide.gene_ids))
        feats.create_dataset("name", data=_fixed(slide.genes))
        feats.create_dataset("feature_type", data=_fixed(["Gene Expression"] * len(slide.genes)))
        feats.create_dataset("genome", data=_fixed(["GRCh38"] * len(slide.genes)))
        feats.create_dataset("_all_tag_keys", data=_fixed(["genome"]))
        if library_id is not None:
            f.attrs["library_ids"] = _fixed([library_id])
        f.attrs["chemistry_description"] = "Spatial 3' v1"
        f.attrs["software_version"] = "spaceranger-2.1.0"
        f.attrs["filetype"] = "matrix"
        f.attrs["version"] = 2
        f.attrs["original_gem_groups"] = np.array([1])
    return path


def he_picture(slide: Slide, disc_spots: np.ndarray | None = None) -> np.ndarray:
    """The full-resolution "H&E": pink tissue, white glass outside the tissue's spots, and a green
    disc (a spot's size) drawn at each of ``disc_spots`` (a mask), at its full-resolution pixels."""
    h, w = FULLRES
    picture = np.full((h, w, 3), 245, np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    y, x = slide.pixels
    for i in np.nonzero(slide.in_tissue)[0]:
        box = (slice(max(0, int(y[i] - 100)), int(y[i] + 100)), slice(max(0, int(x[i] - 100)), int(x[i] + 100)))
        picture[box] = (220, 160, 190)
    if disc_spots is not None:
        for i in np.nonzero(disc_spots)[0]:
            near = (yy - y[i]) ** 2 + (xx - x[i]) ** 2 <= (SPOT_DIAMETER / 2) ** 2
            picture[near] = GREEN
    return picture


def write_spaceranger(outs: Path, slide: Slide, *, version: int = 2, disc_spots=None,
                      library_id: str | None = "slide1", raw: bool = False) -> Path:
    """An ``outs`` folder: the filtered matrix (the spots under the tissue; also the raw one, every
    spot, with ``raw``), the positions as Space Ranger ``version`` writes them, the scale factors and
    both images. Returns ``outs``."""
    from PIL import Image

    write_matrix(outs / "filtered_feature_bc_matrix.h5", slide, slide.in_tissue, library_id)
    if raw:
        write_matrix(outs / "raw_feature_bc_matrix.h5", slide, np.ones(len(slide.rowcol), bool), library_id)
    spatial = outs / "spatial"
    spatial.mkdir(parents=True, exist_ok=True)
    y, x = slide.pixels
    lines = [",".join(HEADER)] if version >= 2 else []
    for i, code in enumerate(slide.barcodes):
        lines.append(f"{code},{int(slide.in_tissue[i])},{slide.rowcol[i, 0]},{slide.rowcol[i, 1]},"
                     f"{int(round(y[i]))},{int(round(x[i]))}")
    name = "tissue_positions.csv" if version >= 2 else "tissue_positions_list.csv"
    (spatial / name).write_text("\n".join(lines) + "\n")
    (spatial / "scalefactors_json.json").write_text(json.dumps({
        "tissue_hires_scalef": HIRES_SCALEF, "tissue_lowres_scalef": LOWRES_SCALEF,
        "fiducial_diameter_fullres": SPOT_DIAMETER * 65 / 55, "spot_diameter_fullres": SPOT_DIAMETER}))
    picture = Image.fromarray(he_picture(slide, disc_spots))
    for key, scale in (("hires", HIRES_SCALEF), ("lowres", LOWRES_SCALEF)):
        size = (round(FULLRES[1] * scale), round(FULLRES[0] * scale))
        picture.resize(size, Image.Resampling.BILINEAR).save(spatial / f"tissue_{key}_image.png")
    return outs
