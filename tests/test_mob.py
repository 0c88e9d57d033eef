"""The paper's spatial-transcriptomics experiment: real MOB counts, scanpy layout, gene and
region concepts, maps back on the spots, and a reduced run of config/mob.yaml over loopback."""

from __future__ import annotations

import hashlib
import logging
import shutil

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from helpers import REPO
from http_server import LoopbackServer

from concept_saliency.config import concept_names, validate_config
from concept_saliency.data import grid, spatial, spot_annotation, st_counts
from concept_saliency.data.synthetic import make_layered_tissue, write_tissue
from concept_saliency.errors import ConfigError, InputDataError
from concept_saliency.genes import GeneIndex, r_make_names, region_markers
from concept_saliency.sources import source_files

MOB = "Rep11_MOB_count_matrix-1.tsv.gz"
MOB_SHA256 = "090d8e13a53194e05bd757d4ead1566360fbf77e78f7283b4203cf1b16395bde"
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


@pytest.fixture(scope="module")
def mob_counts():
    from helpers import shared_data

    path = shared_data() / "mob" / MOB
    if not path.is_file():
        pytest.skip(f"MOB counts not found at {path} (set CSM_TEST_DATA)")
    return path, st_counts.read_st_counts(path)


# ------------------------------------------------------------------ parsing, names


def test_real_counts_parse_positions_genes_and_r_mangled_names(mob_counts):
    path, counts = mob_counts
    assert counts.shape == (262, 16218)
    assert counts.to_numpy().dtype.kind == "i" and counts.to_numpy().min() == 0
    adata = spatial.counts_to_anndata(counts, "Rep11")
    spot = adata.obs.loc["16.92x9.015"]
    assert (spot["array_x"], spot["array_y"]) == (16.92, 9.015)
    assert (spot["array_col"], spot["array_row"]) == (17, 9)
    assert 7.85 <= adata.obs["array_x"].min() < 8.5 and 27.5 < adata.obs["array_x"].max() <= 28.1
    assert 8.9 < adata.obs["array_y"].min() < 9.5 and 23.5 < adata.obs["array_y"].max() <= 24.1
    np.testing.assert_array_equal(adata.obsm["spatial"], adata.obs[["array_x", "array_y"]].to_numpy())
    # the names stay as the file has them; lookups accept either spelling
    assert {"X2010300C02Rik", "H2.Ke6", "Xpr1"} <= set(adata.var_names)
    genes = GeneIndex(adata.var_names, str(path))
    found = genes.find(["2010300C02Rik", "H2-Ke6", "Penk", "Xpr1"])
    assert [genes.genes[i] for i in found] == ["X2010300C02Rik", "H2.Ke6", "Penk", "Xpr1"]
    with pytest.raises(ConfigError) as info:
        genes.find(["Penk", "Penkk", "NotAGene1"], "concept 'x'")
    message = str(info.value)
    assert message.startswith("concept 'x': gene(s) not found") and "'Penkk' (close names: Penk" in message
    assert "'NotAGene1'" in message and "16218 genes" in message and "case-sensitive" in message
    # another case is another name: refused, with the right spelling (also through make.names)
    for wrong, right in (("PENK", "'Penk'"), ("x2010300c02rik", "'X2010300C02Rik'"), ("h2-ke6", "'H2.Ke6'")):
        with pytest.raises(ConfigError, match=f"'{wrong}' \\(did you mean {right}\\?\\)"):
            genes.find_one(wrong, "concept 'x'")


def test_r_make_names_and_ambiguous_spellings():
    assert r_make_names("2010300C02Rik") == "X2010300C02Rik"
    assert r_make_names("H2-Ke6") == "H2.Ke6"
    assert r_make_names("Xpr1") == "Xpr1"
    assert r_make_names(".5a") == "X.5a"
    both = GeneIndex(["H2-Ke6", "H2.Ke6"])
    assert both.find_one("H2.Ke6") == 1 and both.find_one("H2-Ke6") == 0  # exact matches win
    with pytest.raises(ConfigError, match=r"ambiguous gene name\(s\): 'H2 Ke6' \(H2-Ke6, H2.Ke6\)"):
        both.find(["H2 Ke6"])  # only the make.names spelling matches, and it matches both
    with pytest.raises(ConfigError, match=r"'h2-ke6' \(did you mean 'H2-Ke6' or 'H2.Ke6'\?\)"):
        both.find(["h2-ke6"])
    # genes that differ in case only are two genes (Drosophila's hairy and Hairless)
    fly = GeneIndex(["h", "H", "Ubx"])
    assert list(fly.find(["H", "h"])) == [1, 0]


# ------------------------------------------------------------------ normalisation


def test_normalisation_values_and_filters_on_real_counts(mob_counts, caplog):
    _, counts = mob_counts
    raw = counts.to_numpy()
    spot_ok = raw.sum(axis=1) >= 100
    gene_ok = (raw[spot_ok] > 0).sum(axis=0) >= 10
    kept = raw[spot_ok][:, gene_ok]
    with caplog.at_level(logging.INFO):
        scaled, removed = spatial.normalise(spatial.counts_to_anndata(counts), "scale",
                                            min_spots=10, min_counts=100)
    assert removed == {"spots_removed": int((~spot_ok).sum()), "genes_removed": int((~gene_ok).sum()),
                       "spots": 260, "genes": int(gene_ok.sum())}
    assert removed["spots_removed"] == 2 and removed["genes_removed"] == 3271
    assert "removed 2 spots with fewer than 100 counts and 3271 genes detected in fewer than 10 spots" \
        in caplog.text
    np.testing.assert_array_equal(scaled.layers["counts"], kept)
    penk = list(counts.columns[gene_ok]).index("Penk")
    c = kept[:, penk].astype(np.float64)
    np.testing.assert_allclose(scaled.X[:, penk], (c - c.min()) / (c.max() - c.min()), rtol=1e-6)
    assert scaled.X.min() == 0 and np.allclose(scaled.X.max(axis=0), 1)

    logged, _ = spatial.normalise(spatial.counts_to_anndata(counts), "log1p-scale",
                                  min_spots=10, min_counts=100)
    v = np.log1p(kept / kept.sum(axis=1, keepdims=True) * 1e4)[:, penk]
    np.testing.assert_allclose(logged.X[:, penk], (v - v.min()) / (v.max() - v.min()), rtol=1e-4, atol=1e-6)
    assert not np.allclose(logged.X[:, penk], scaled.X[:, penk], atol=0.02)


# ------------------------------------------------------------------ grid


def test_grid_round_trip_spot_pixel_spot_on_real_positions(mob_counts):
    _, counts = mob_counts
    adata, _ = spatial.normalise(spatial.counts_to_anndata(counts), "scale", min_spots=200)
    index = grid.grid_index(adata)
    assert index.shape == (32, 32)
    assert len(set(zip(index.row, index.col))) == adata.n_obs  # one pixel per spot
    # pixels follow the array: one step in x is one column, one step in y one row
    assert np.array_equal(index.col - index.col.min(), adata.obs["array_col"] - adata.obs["array_col"].min())
    assert np.array_equal(index.row - index.row.min(), adata.obs["array_row"] - adata.obs["array_row"].min())
    images = grid.genes_to_images(adata, index)
    np.testing.assert_array_equal(grid.pixels_to_spots(images, index), np.asarray(adata.X).T)
    assert images[:, ~index.tissue_mask()].max() == 0  # nothing off the tissue
    back = np.zeros_like(images)  # spot -> pixel again from the recovered spot values
    back[:, index.row, index.col, 0] = grid.pixels_to_spots(images, index)
    np.testing.assert_array_equal(back, images)
    with pytest.raises(InputDataError, match="grid_size 16 is smaller than the spot array"):
        grid.grid_index(adata, 16)


def test_hexagonal_visium_grid_halves_columns():
    import anndata as ad

    rows, cols = np.meshgrid(np.arange(6), np.arange(12), indexing="ij")
    keep = (rows + cols) % 2 == 0
    a = ad.AnnData(np.zeros((keep.sum(), 1), np.float32))
    a.obs["array_row"], a.obs["array_col"] = rows[keep], cols[keep]
    index = grid.grid_index(a)
    assert index.shape == (8, 8) and np.ptp(index.col) == 5  # 12 hexagonal columns -> 6 pixels
    assert len(set(zip(index.row, index.col))) == keep.sum()
    assert np.ptp(grid.grid_index(a, hexagonal=False).col) == 11


# ------------------------------------------------------------------ AnnData layout, scanpy


def test_prepared_anndata_has_scanpy_layout_and_scanpy_draws_it_on_the_image(mob_counts, tmp_path):
    import anndata as ad
    import matplotlib.pyplot as plt
    import scanpy as sc
    from PIL import Image

    from concept_saliency.data.samples import SampleStore
    from concept_saliency.stages.prepare_spatial import prepare_spatial

    path, counts = mob_counts
    (tmp_path / "t.txt").write_text("150.0 0 0 0 151.0 0 -1000.5 -1200.25 1\n")
    he = np.full((3000, 4000, 3), (230, 180, 200), np.uint8)
    he[1000:2000, 1500:2500] = (120, 40, 110)
    Image.fromarray(he).save(tmp_path / "he.jpg")
    out = tmp_path / "data"
    prepare_spatial(samples=str(out / "samples.h5"), anndata=str(out / "spatial.h5ad"),
                    grid=str(out / "grid.h5"), normalisation={"method": "scale", "min_spots": 200},
                    grid_size="auto", validation_fraction=0.1, seed=0, counts=str(path),
                    transformation=str(tmp_path / "t.txt"), image=str(tmp_path / "he.jpg"),
                    library_id="Rep11", multiple=8)
    adata = ad.read_h5ad(out / "spatial.h5ad")
    assert adata.uns["csm_format"] == "csm.anndata"
    assert {"array_x", "array_y", "array_row", "array_col"} <= set(adata.obs)
    spot = adata.obs_names.get_loc("16.92x9.015")
    np.testing.assert_allclose(adata.obsm["spatial"][spot], [16.92 * 150 - 1000.5, 9.015 * 151 - 1200.25])
    assert adata.layers["counts"].dtype.kind == "i"
    np.testing.assert_array_equal(adata.layers["counts"][spot], counts.loc["16.92x9.015", adata.var_names])
    lib = adata.uns["spatial"]["Rep11"]
    hires = lib["images"]["hires"]
    assert hires.shape == (1500, 2000, 3) and lib["images"]["lowres"].shape == (450, 600, 3)
    assert lib["scalefactors"]["tissue_hires_scalef"] == pytest.approx(0.5)
    assert lib["scalefactors"]["spot_diameter_fullres"] == pytest.approx(0.5 * np.sqrt(150 * 151))
    # scanpy finds the image, scale factors and spot size on its own
    ax = sc.pl.spatial(adata, color="Penk", show=False)[0]
    np.testing.assert_array_equal(ax.images[0].get_array()[..., :3], hires)
    # its discs sit at the pixel positions scaled to the stored image (scanpy draws them sorted by value)
    centres = np.array([(p.vertices.max(0) + p.vertices.min(0)) / 2 for p in ax.collections[0].get_paths()])
    np.testing.assert_allclose(np.sort(centres, axis=0), np.sort(adata.obsm["spatial"] * 0.5, axis=0), atol=1e-6)
    plt.savefig(tmp_path / "penk.png")
    plt.close("all")
    assert (tmp_path / "penk.png").stat().st_size > 10_000
    # our concept figure draws on the same image: its pink and purple show in the panels
    from concept_saliency.plotting import save_figure
    from concept_saliency.plotting_spatial import plot_concept_on_tissue, tissue_layout

    coords, image, diameter = tissue_layout(adata)
    np.testing.assert_allclose(coords, adata.obsm["spatial"] * 0.5)
    assert image is hires and diameter == pytest.approx(0.25 * np.sqrt(150 * 151))
    genes = ["Penk", "Doc2g"]
    adata.obs["csm_c_decoded"] = np.asarray(adata[:, "Penk"].X).ravel()
    adata.obs["csm_c_vanilla_gradient"] = np.linspace(-1, 1, adata.n_obs)
    adata.obsm["csm_c_vanilla_gradient"] = pd.DataFrame(np.ones((adata.n_obs, 2)), adata.obs_names, genes)
    adata.uns["csm_concepts"] = {"c": {"kind": "gene_set", "members": genes, "explained": genes,
                                       "methods": ["vanilla_gradient"]}}
    save_figure(plot_concept_on_tissue(adata, "c"), tmp_path / "c.png")
    png = np.asarray(Image.open(tmp_path / "c.png").convert("RGB")).reshape(-1, 3).astype(int)
    for colour in ((230, 180, 200), (120, 40, 110)):  # drawn at alpha 0.9 on white
        shown = 0.9 * np.asarray(colour) + 0.1 * 255
        assert (np.abs(png - shown).max(axis=1) <= 6).sum() > 2000, colour
    # genes as samples: one 32x32 image per gene, and the index back to the spots
    index, regions = grid.read_grid(out / "grid.h5")
    assert index.shape == (32, 32) and index.spots == list(adata.obs_names) and regions is None
    with SampleStore(str(out / "samples.h5")) as store:
        assert store.ids == list(adata.var_names) and store.sample_shape == (32, 32, 1)
        penk = store.read([store.ids.index("Penk")])
    np.testing.assert_allclose(grid.pixels_to_spots(penk, index)[0], adata.X[:, adata.var_names.get_loc("Penk")])


def test_alignment_and_image_errors(tmp_path):
    bad = tmp_path / "t.txt"
    bad.write_text("1 0 0 0 1 0 0 0\n")
    with pytest.raises(InputDataError, match="t.txt: the alignment matrix must be 9 numbers .*found 8"):
        st_counts.read_transformation(bad)
    bad.write_text("a b c d e f g h i")
    with pytest.raises(InputDataError, match="must be 9 numbers, found 'a b c"):
        st_counts.read_transformation(bad)
    (tmp_path / "he.jpg").write_bytes(b"not an image")
    with pytest.raises(InputDataError, match="he.jpg: cannot read the image"):
        st_counts.read_image(tmp_path / "he.jpg")
    counts = pd.DataFrame([[1, 2]], index=["1x1"], columns=["A", "B"])
    with pytest.raises(InputDataError, match="needs the alignment matrix"):
        spatial.counts_to_anndata(counts, image=np.zeros((4, 4, 3), np.uint8))


def visium_like(tmp_path, n_genes=30, duplicate=True):
    """A hexagonal array with sparse float counts in X, pixel positions, an image, a cluster column
    (and the first gene's name given to the last gene too, with ``duplicate``)."""
    import anndata as ad
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    rows, cols = np.meshgrid(np.arange(10), np.arange(20), indexing="ij")
    keep = ((rows + cols) % 2 == 0).ravel()
    rows, cols = rows.ravel()[keep], cols.ravel()[keep]
    inner = (np.abs(rows - 4.5) < 3) & (np.abs(cols - 9.5) < 6)
    counts = rng.poisson(2.0, (len(rows), n_genes)).astype(np.float32)
    counts[inner, :5] += rng.poisson(20.0, (inner.sum(), 5))
    a = ad.AnnData(sp.csr_matrix(counts))
    a.obs_names = [f"AAAC-{i}" for i in range(len(rows))]
    a.var_names = [f"Gene{j}" for j in range(n_genes - 1)] + ["Gene0" if duplicate else f"Gene{n_genes - 1}"]
    a.obs["array_row"], a.obs["array_col"] = rows, cols
    a.obs["cluster"] = np.where(inner, "inner", "outer")
    a.obsm["spatial"] = np.stack([cols * 50.0 + 100, rows * 86.6 + 100], axis=1)
    a.uns["spatial"] = {"V1_test": {"images": {"hires": np.full((600, 1200, 3), 0.8, np.float32)},
                                    "scalefactors": {"tissue_hires_scalef": 0.5, "spot_diameter_fullres": 40.0}}}
    path = tmp_path / "visium.h5ad"
    a.write_h5ad(path)
    return path, counts, inner


def test_an_existing_visium_anndata_is_accepted(tmp_path):
    from concept_saliency.data.samples import SampleStore
    from concept_saliency.stages.prepare_spatial import prepare_spatial

    path, counts, inner = visium_like(tmp_path)
    with pytest.raises(InputDataError, match=r"gene 'Gene0' is given twice \(var_names\[0\] and "
                                             r"var_names\[29\]\).*duplicate_genes: sum"):
        spatial.read_user_anndata(path, region_key="cluster")
    user = spatial.read_user_anndata(path, region_key="cluster", duplicate_genes="sum")
    summed = np.column_stack([counts[:, 0] + counts[:, 29], counts[:, 1:29]])
    np.testing.assert_array_equal(user.layers["counts"].toarray(), summed)
    assert list(user.var_names) == [f"Gene{j}" for j in range(29)] and user.uns["csm_region_key"] == "cluster"
    assert list(user.uns["csm_merged_genes"]["gene"]) == ["Gene0"]
    assert user.uns["spatial"]["V1_test"]["scalefactors"]["spot_diameter_fullres"] == 40.0
    out = tmp_path / "data"
    prepare_spatial(samples=str(out / "s.h5"), anndata=str(out / "a.h5ad"), grid=str(out / "g.h5"),
                    normalisation={"method": "log1p-scale", "min_spots": 1, "duplicate_genes": "sum"},
                    grid_size="auto",
                    validation_fraction=0.0, seed=0, h5ad=str(path), options={"region_key": "cluster"},
                    multiple=8)
    index, regions = grid.read_grid(out / "g.h5")
    assert index.shape == (16, 16) and np.ptp(index.col) == 9  # 20 hexagonal columns -> 10 pixels
    assert regions == list(np.where(inner, "inner", "outer"))
    with SampleStore(str(out / "s.h5")) as store:
        assert len(store) == 29 and store.sample_shape == (16, 16, 1)
    prepared = spatial.read_anndata(out / "a.h5ad")
    markers = region_markers(prepared, "cluster", "Inner", 5)
    assert set(markers["gene"]) == {"Gene0", "Gene1", "Gene2", "Gene3", "Gene4"}


def test_anndata_input_errors_name_the_key(tmp_path):
    import anndata as ad

    path, _, _ = visium_like(tmp_path, duplicate=False)
    with pytest.raises(InputDataError, match="no layer 'raw'.*set 'counts_layer'"):
        spatial.read_user_anndata(path, counts_layer="raw")
    with pytest.raises(InputDataError, match="no obs column 'layer' for 'region_key'"):
        spatial.read_user_anndata(path, region_key="layer")
    with pytest.raises(InputDataError, match="no library 'V2'"):
        spatial.read_user_anndata(path, library_id="V2")
    a = ad.read_h5ad(path)
    a.X = a.X * 0.37
    a.write_h5ad(tmp_path / "norm.h5ad")
    with pytest.raises(InputDataError, match="X does not hold raw counts"):
        spatial.read_user_anndata(tmp_path / "norm.h5ad")
    del a.obs["array_row"]
    a.X = a.X / 0.37
    a.write_h5ad(tmp_path / "halfpos.h5ad")
    with pytest.raises(InputDataError, match=r"obs has 'array_col' but no 'array_row'"):
        spatial.read_user_anndata(tmp_path / "halfpos.h5ad")
    del a.obs["array_col"]
    a.write_h5ad(tmp_path / "nopos.h5ad")
    with pytest.raises(InputDataError, match=r"no spot positions: give obs\['array_row'\]"):
        spatial.read_user_anndata(tmp_path / "nopos.h5ad")


# ------------------------------------------------------------------ concepts


@pytest.fixture(scope="module")
def tissue_files(tmp_path_factory):
    """The synthetic layered tissue prepared like real data, with latents that encode the layers."""
    from concept_saliency.encoding import write_latents
    from concept_saliency.stages.prepare_spatial import prepare_spatial

    tmp = tmp_path_factory.mktemp("tissue")
    t = make_layered_tissue(n_layers=3, genes_per_layer=20, n_housekeeping=10, n_noise=30, seed=3)
    write_tissue(t, tmp / "counts.tsv.gz", tmp / "annotation.tsv")
    prepare_spatial(samples=str(tmp / "samples.h5"), anndata=str(tmp / "spatial.h5ad"),
                    grid=str(tmp / "grid.h5"), normalisation={"method": "scale"}, grid_size="auto",
                    validation_fraction=0.1, seed=0, counts=str(tmp / "counts.tsv.gz"),
                    annotation=str(tmp / "annotation.tsv"), multiple=8)
    rng = np.random.default_rng(0)
    z = rng.normal(0, 0.3, (len(t.genes), 6)).astype(np.float32)
    for k in range(3):
        z[t.gene_layer == k, k] += 3.0
    with h5py.File(tmp / "samples.h5") as f:
        split = f["split"][()]
    write_latents(tmp / "latents.h5", z, t.genes, split)
    return tmp, t, z


def test_region_markers_of_an_annotated_layer_are_its_genes(tissue_files):
    tmp, t, _ = tissue_files
    adata = spatial.read_anndata(tmp / "spatial.h5ad")
    assert adata.uns["csm_region_key"] == "region"
    table = region_markers(adata, "region", "LAYER2", 15)
    assert len(table) == 15 and table["gene"].str.startswith("Layer2g").all()
    assert (table["logfoldchange"] > 1).all() and (table["p_adj"] < 1e-3).all()
    with pytest.raises(ConfigError, match="concept 'c': region 'layer9' not in annotation 'region'; "
                                          "its regions: layer1, layer2, layer3"):
        region_markers(adata, "region", "layer9", 5, what="concept 'c'")
    with pytest.raises(ConfigError, match="no spot annotation 'cluster'"):
        region_markers(adata, "cluster", "x", 5)


LAYER_MARKERS = {  # known markers of the bulb's layers, none of them used to build the annotation
    "GCL": {"Penk"}, "MCL": {"Ntng1", "Tbx21"}, "OPL": {"Cck"}, "GL": {"Nrsn1"},
    "ONL": {"Kctd12", "Scd1"},
}


def test_layer_annotation_of_replicate_11_covers_its_spots_with_the_known_markers(mob_counts):
    """tests/data/mob_rep11_layers.tsv (benchmarks/mob_annotation.py): every spot kept by
    config/mob.yaml's min_counts has one of the five layers, each with at least 30 spots, and
    each layer's top marker genes (as a region concept would take them) hold a known marker."""
    path, counts = mob_counts
    adata = spatial.counts_to_anndata(counts, "Rep11")
    regions = spot_annotation.read_spot_annotation(REPO / "tests" / "data" / "mob_rep11_layers.tsv",
                                                   list(adata.obs_names))
    kept = counts.sum(axis=1).to_numpy() >= 100
    assert all(r for r, k in zip(regions, kept) if k) and not any(r for r, k in zip(regions, kept) if not k)
    sizes = pd.Series([r for r in regions if r]).value_counts()
    assert sorted(sizes.index) == sorted(LAYER_MARKERS) and sizes.min() >= 30 and sizes.sum() == 260
    adata.obs["region"] = regions
    for layer, known in LAYER_MARKERS.items():
        top = set(region_markers(adata, "region", layer, 20)["gene"])
        assert top & known, (layer, sorted(top))


def test_concepts_stage_builds_seed_gene_set_and_region_concepts(tissue_files):
    from concept_saliency.concept_vectors import read_concepts
    from concept_saliency.stages.concepts import concepts

    tmp, t, z = tissue_files
    out = tmp / "concepts"
    spec = {"seed_genes": {"l1": "Layer1g003", "l3": {"gene": "Layer3g001", "n_genes": 10}},
            "n_genes": 20,
            "gene_sets": {"hk": ["Hk001", "Hk002"], "l2set": {"genes": ["Layer2g001", "Layer2g002"],
                                                          "subtract_rest": True}},
            "regions": {"layer2_markers": "layer2"}, "n_markers": 12}
    concepts(latents=str(tmp / "latents.h5"), samples=str(tmp / "samples.h5"), concepts=str(out / "c.h5"),
             separation=str(out / "sep.tsv"), groups=str(out / "g.tsv"),
             spec=spec, top_k=3, explain_ids=["Noise001"], seed=0, anndata=str(tmp / "spatial.h5ad"))
    groups = pd.read_csv(out / "g.tsv", sep="\t")
    by = {c: g for c, g in groups.groupby("concept")}
    assert len(by["l1"]) == 20 and len(by["l3"]) == 10 and len(by["layer2_markers"]) == 12
    assert by["l1"]["gene"].iloc[0] == "Layer1g003" and by["l1"]["r"].iloc[0] == pytest.approx(1)
    assert by["l1"]["gene"].str.startswith("Layer1g").all() and (by["l1"]["p"].iloc[1:] < 0.05).all()
    assert by["layer2_markers"]["gene"].str.startswith("Layer2g").all()
    assert by["layer2_markers"]["kind"].eq("region").all() and by["layer2_markers"]["r"].isna().all()
    cs = read_concepts(out / "c.h5")
    assert cs.names == ["l1", "l3", "hk", "l2set", "layer2_markers"]
    assert cs.kinds == ["seed_gene", "seed_gene", "gene_set", "gene_set", "region"]
    ids = np.asarray(cs.ids)
    members = np.isin(ids, ["Layer2g001", "Layer2g002"])
    np.testing.assert_allclose(cs.vectors[3], z[members].mean(0) - z[~members].mean(0), rtol=1e-5)
    np.testing.assert_allclose(cs.vectors[2], z[np.isin(ids, ["Hk001", "Hk002"])].mean(0), rtol=1e-5)
    # the seed gene is explained first, then the best members, then the extra ids
    explained = [cs.ids[i] for i in cs.explain["l1"]]
    assert explained[0] == "Layer1g003" and len(explained) == 4 and explained[-1] == "Noise001"
    sep = pd.read_csv(out / "sep.tsv", sep="\t").set_index("concept")
    # the 8 layer-2 genes that are not among the 12 markers score high too: AUROC about 0.92
    assert sep.loc["layer2_markers", "auroc"] > 0.9 and sep.loc["l1", "auroc"] > 0.95
    with pytest.raises(ConfigError, match="concept 'bad': gene\\(s\\) not found .*: 'Nope1', 'Nope2'"):
        concepts(latents=str(tmp / "latents.h5"), samples=str(tmp / "samples.h5"),
                 concepts=str(out / "c2.h5"), separation=str(out / "s2.tsv"),
                 groups=str(out / "g2.tsv"), spec={"gene_sets": {"bad": ["Hk001", "Nope1", "Nope2"]}},
                 top_k=2, explain_ids=[], seed=0)
    assert not (out / "c2.h5").exists()


# ------------------------------------------------------------------ config, sources


def test_mob_config_is_valid_and_names_its_concepts(monkeypatch):
    monkeypatch.chdir(REPO)  # the config's paths are relative to the workflow's folder
    config = validate_config(yaml.safe_load((REPO / "config" / "mob.yaml").read_text()), SCHEMA)
    mob = config["datasets"]["mob"]
    assert mob["models"]["paper"] == {"preset": "paper-mob", "epochs": 60, "batch_size": 64,
                                      "seeds": [0, 1, 2], "learning_rate": None, "latent_output": None,
                                      "precision": "float32"}
    # regions: all, made explicit from the annotation when the config is read
    assert mob["concepts"]["regions"] == {"gcl": "GCL", "gl": "GL", "mcl": "MCL", "onl": "ONL", "opl": "OPL"}
    assert concept_names("mob", mob) == ["penk", "doc2g", "kctd12", "mitral_markers",
                                         "gcl", "gl", "mcl", "onl", "opl"]
    # each region against the other genes and the other regions' markers (RESULTS-mob.md)
    assert mob["concepts"]["subtract_rest"] is True and mob["concepts"]["subtract_regions"] is True
    assert (REPO / mob["source"]["st_counts"]["annotation"]).is_file()
    assert mob["source"]["st_counts"]["counts"]["checksum"] == f"sha256:{MOB_SHA256}"
    files = source_files("mob", mob, "results")
    assert files["counts"].path == f"results/mob/raw/download/{MOB}"
    assert files["counts"].url.endswith(f"shared/data/mob/{MOB}")


def test_input_files_local_remote_and_clashing_names():
    ds = {"source": {"st_counts": {"counts": "/data/c.tsv", "image": "https://x.org/a/HE_Rep1.jpg?dl=1",
                                   "transformation": {"url": "/data/t.txt", "checksum": "md5:" + "0" * 32},
                                   "annotation": "/data/regions.tsv"}}}
    files = source_files("d", ds, "res")
    assert files["counts"].path == "/data/c.tsv" and files["counts"].url is None
    assert files["image"].path == "res/d/raw/download/HE_Rep1.jpg"
    assert files["image"].url == "https://x.org/a/HE_Rep1.jpg?dl=1"
    assert files["transformation"].path == "res/d/raw/download/t.txt"
    assert files["annotation"].path == "/data/regions.tsv"
    clash = {"source": {"st_counts": {"counts": "http://a/x.txt", "transformation": "http://b/x.txt"}}}
    with pytest.raises(ConfigError, match="file name 'x.txt' is also the name of 'counts'"):
        source_files("d", clash, "res")
    config = yaml.safe_load((REPO / "config" / "mob.yaml").read_text())
    config["datasets"]["mob"]["source"]["st_counts"]["counts"]["checksum"] = "sha256:xyz"
    with pytest.raises(ConfigError, match="datasets.mob.source.st_counts.counts"):
        validate_config(config, SCHEMA)


# ------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def mob_run(tmp_path_factory, mob_counts):
    """config/mob.yaml, reduced (fewer genes, 2 epochs, one method, 3 genes explained), on the real counts served
    over loopback by a server that drops the first connection half way."""
    from test_workflow import copy_workflow, snakemake

    path, counts = mob_counts
    work = copy_workflow(tmp_path_factory.mktemp("mob"))
    www = work / "www"
    www.mkdir()
    shutil.copy(path, www / MOB)
    # the annotation as MERINGUE's mOB is shared (spots named by barcode, their positions apart),
    # written by R (write.csv with row names: header "","annot","x","y"; quoted), on the array's
    # whole positions (17, 9 for the spot measured at 16.92x9.015), with long labels
    penk = counts["Penk"]
    layer = np.where(penk > penk.median(), "1: Penk high", "2: Rest")
    whole = [(round(float(s.split('x')[0])), round(float(s.split('x')[1]))) for s in counts.index]
    codes = [f"ACGT{k:014d}" for k in range(len(whole))]
    (work / "regions.csv").write_text('"","annot","x","y"\n' + "".join(
        f'"{c}","{r}",{x},{y}\n' for c, r, (x, y) in zip(codes, layer, whole)))
    config = yaml.safe_load((work / "config" / "mob.yaml").read_text())
    config["saliency"]["methods"] = {"vanilla_gradient": {}}
    mob = config["datasets"]["mob"]
    mob["normalisation"]["min_spots"] = 200
    mob["models"]["paper"]["epochs"] = 2
    del mob["models"]["paper"]["seeds"]  # one training (the consensus across seeds: test_stability.py)
    mob["explain"]["top_k"] = 3
    mob["concepts"] = {"seed_genes": {"penk": {"gene": "Penk", "n_genes": 30}},
                       "gene_sets": {"mangled": ["2010300C02Rik", "Slc17a7", "Cdhr1"]},
                       "n_markers": 25,  # no 'regions': one concept per region of the annotation,
                       "subtract_rest": True, "subtract_regions": True}  # each against the other, as mob.yaml
    with LoopbackServer(www) as server:
        server.behaviour = "drop"
        mob["source"]["st_counts"]["counts"]["url"] = f"{server.url}/{MOB}"
        mob["source"]["st_counts"]["annotation"] = str(work / "regions.csv")
        (work / "reduced.yaml").write_text(yaml.safe_dump(config))
        done = snakemake(work, "--cores", "2", "--configfile", "reduced.yaml", timeout=900)
        requests = list(server.requests)
    return work, work / "results" / "mob", done, requests


@pytest.mark.workflow
def test_reduced_mob_run_downloads_resumes_and_verifies(mob_run):
    import json

    work, results, _, requests = mob_run
    raw = results / "raw" / "download" / MOB
    assert hashlib.sha256(raw.read_bytes()).hexdigest() == MOB_SHA256
    assert requests[0] == (f"/{MOB}", None) and requests[1][1].startswith("bytes=")  # resumed
    record = json.loads((raw.parent / f"{MOB}.prov.json").read_text())
    assert record["format"] == "csm.download" and record["file"]["checksum"] == f"sha256:{MOB_SHA256}"
    assert not [p for p in results.rglob("*") if ".part" in p.name or ".tmp-" in p.name]


@pytest.mark.workflow
def test_reduced_mob_run_tables_and_maps_on_the_spots(mob_run):
    import anndata as ad
    import matplotlib.pyplot as plt
    import scanpy as sc

    work, results, _, _ = mob_run
    groups = pd.read_csv(results / "paper" / "concepts" / "groups.tsv", sep="\t")
    penk = groups[groups["concept"] == "penk"]
    assert len(penk) == 30 and penk["gene"].iloc[0] == "Penk" and penk["r"].iloc[0] == pytest.approx(1)
    assert penk["r"].is_monotonic_decreasing and penk["p"].iloc[1:].between(0, 1).all()
    assert list(groups.loc[groups["concept"] == "mangled", "gene"]) == ["X2010300C02Rik", "Slc17a7", "Cdhr1"]
    assert set(groups.loc[groups["kind"] == "region", "concept"]) == {"1_penk_high", "2_rest"}
    region = groups[groups["concept"] == "1_penk_high"]
    assert len(region) == 25 and "Penk" in set(region["gene"].head(10))
    assert (region["logfoldchange"] > 0).all()

    tissue = ad.read_h5ad(results / "paper" / "maps.h5ad")
    assert tissue.uns["csm_format"] == "csm.spatial-maps" and tissue.n_obs == 260
    for concept in ("penk", "mangled", "1_penk_high"):
        for what in ("vanilla_gradient", "decoded"):
            values = tissue.obs[f"csm_{concept}_{what}"].to_numpy()
            assert np.isfinite(values).all() and values.std() > 0, (concept, what)
        per_gene = tissue.obsm[f"csm_{concept}_vanilla_gradient"]
        assert list(per_gene.index) == list(tissue.obs_names) and per_gene.shape[1] == 3
        assert list(tissue.uns["csm_concepts"][concept]["explained"]) == list(per_gene.columns)
    assert tissue.obsm["csm_penk_vanilla_gradient"].columns[0] == "Penk"
    # the mean map is the mean of the explained member genes' maps
    np.testing.assert_allclose(tissue.obs["csm_penk_vanilla_gradient"],
                               tissue.obsm["csm_penk_vanilla_gradient"].mean(axis=1), rtol=1e-5, atol=1e-7)
    assert tissue.var["csm_member_penk"].sum() == 30 and tissue.varm["csm_latent"].shape == (tissue.n_vars, 20)
    # the concept vector is the mean latent of its genes; a gene's score is its latent . vector
    member = tissue.var["csm_member_penk"].to_numpy()
    latent, vector = tissue.varm["csm_latent"], tissue.uns["csm_concepts"]["penk"]["vector"]
    np.testing.assert_allclose(vector, latent[member].mean(axis=0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(tissue.var["csm_score_penk"], latent @ vector, rtol=1e-4, atol=1e-5)
    assert set(tissue.var_names[member]) == set(groups.loc[groups["concept"] == "penk", "gene"])
    # a region's vector: half against the other genes, half against the other region's markers
    own, other = (tissue.var[f"csm_member_{c}"].to_numpy() for c in ("1_penk_high", "2_rest"))
    expected = 0.5 * ((latent[own].mean(0) - latent[other].mean(0)) + (latent[own].mean(0) - latent[~own].mean(0)))
    np.testing.assert_allclose(tissue.uns["csm_concepts"]["1_penk_high"]["vector"], expected, rtol=1e-4, atol=1e-5)
    # no H&E image for this replicate: scanpy draws the spots with their size from the scale factors
    ax = sc.pl.spatial(tissue, color="csm_penk_vanilla_gradient", img_key=None, show=False)[0]
    assert len(ax.collections[0].get_paths()) == tissue.n_obs and not ax.images
    plt.close("all")
    for concept in ("penk", "mangled", "1_penk_high"):
        figure = results / "paper" / "figures" / f"{concept}.png"
        assert figure.stat().st_size > 20_000, figure


@pytest.mark.workflow
def test_reduced_mob_run_is_complete(mob_run):
    from test_workflow import planned_jobs

    work, _, _, _ = mob_run
    assert planned_jobs(work, "--configfile", "reduced.yaml") == {}
