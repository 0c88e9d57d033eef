"""Visium straight from Space Ranger: small real ``outs`` folders (tests/spaceranger.py) read in
scanpy's layout, the hexagonal lattice on the gene images, spots on the H&E, and a run through
Snakemake."""

from __future__ import annotations

import json
import shutil
import warnings

import h5py
import numpy as np
import pytest
import yaml

from helpers import REPO, run_stage
from spaceranger import HIRES_SCALEF, lattice, planted_slide, write_spaceranger

from concept_saliency.config import validate_config
from concept_saliency.data import grid, visium
from concept_saliency.data.spatial import read_anndata
from concept_saliency.errors import ConfigError, InputDataError
from concept_saliency.sources import source_files

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


@pytest.fixture(scope="module")
def slide():
    return planted_slide()


@pytest.fixture(scope="module")
def outs(tmp_path_factory, slide):
    """Space Ranger 2's outs folder (positions with a header), raw matrix too, the DISC spots
    painted green on the H&E."""
    return write_spaceranger(tmp_path_factory.mktemp("sr2") / "outs", slide, raw=True,
                             disc_spots=slide.counts[:, 0] > 0)


def files(outs, **extra) -> dict:
    return {role: f.path for role, f in source_files("v", {"source": {"visium": {"path": str(outs), **extra}}},
                                                    "results").items()}


def read(outs, **kw):
    f = files(outs, **{k: kw.pop(k) for k in ("count_file",) if k in kw})
    return visium.read_visium(f["matrix"], f["positions"], f["scalefactors"], f.get("hires_image"),
                              f.get("lowres_image"), **kw)


def is_green(pixels) -> np.ndarray:
    pixels = np.asarray(pixels, dtype=float)
    if pixels.max() <= 1.0:  # scanpy's float images
        pixels = pixels * 255
    return (pixels[..., 1] > 150) & (pixels[..., 0] < 60) & (pixels[..., 2] < 60)


# ------------------------------------------------------------------ the hexagonal lattice on the grid


def hex_neighbours(row: int, col: int) -> list[tuple[int, int]]:
    """The six spots around (row, col) on Visium's lattice: two in its row, two above, two below."""
    return [(row, col - 2), (row, col + 2), (row - 1, col - 1), (row - 1, col + 1), (row + 1, col - 1),
            (row + 1, col + 1)]


def test_the_lattice_rule_keeps_every_neighbour_a_neighbouring_pixel_on_a_whole_visium_array():
    import anndata as ad

    spots = lattice()  # 78 rows x 128 columns, row + col even: 4992 spots
    assert len(spots) == 4992
    a = ad.AnnData(np.zeros((len(spots), 1), np.float32))
    a.obs["array_row"], a.obs["array_col"] = spots[:, 0], spots[:, 1]
    index = grid.grid_index(a)
    assert index.shape == (128, 128)
    # the documented rule: pixel row = array_row (+ the centring), pixel column = array_col // 2
    pad_row, pad_col = (128 - 78) // 2, (128 - 64) // 2
    np.testing.assert_array_equal(index.row, spots[:, 0] + pad_row)
    np.testing.assert_array_equal(index.col, spots[:, 1] // 2 + pad_col)
    assert len(set(zip(index.row.tolist(), index.col.tolist()))) == len(spots)  # no two spots share a pixel
    pixel = {(r, c): (pr, pc) for (r, c), pr, pc in zip(spots.tolist(), index.row.tolist(), index.col.tolist())}
    checked = 0
    for (r, c), (pr, pc) in pixel.items():
        offsets = set()
        for n in hex_neighbours(r, c):
            if n in pixel:
                dr, dc = pixel[n][0] - pr, pixel[n][1] - pc
                assert max(abs(dr), abs(dc)) == 1, ((r, c), n, dr, dc)
                offsets.add((dr, dc))
                checked += 1
        # odd-r offset layout: the rows above and below reach left from even rows, right from odd ones
        side = -1 if r % 2 == 0 else 1
        assert offsets <= {(0, -1), (0, 1), (-1, 0), (-1, side), (1, 0), (1, side)}
    assert checked == sum(len([n for n in hex_neighbours(r, c) if n in pixel]) for r, c in pixel)
    # and the other way round: the six pixels around a spot's pixel hold exactly its six neighbours
    spot_at = {p: s for s, p in pixel.items()}
    r, c = 40, 60
    pr, pc = pixel[(r, c)]
    around = {spot_at[(pr + dr, pc + dc)] for dr, dc in ((0, -1), (0, 1), (-1, 0), (-1, -1), (1, 0), (1, -1))}
    assert around == set(hex_neighbours(r, c))


def test_a_window_of_the_lattice_keeps_its_numbering_and_a_square_array_is_not_halved():
    import anndata as ad

    window = lattice(range(31, 37), range(97, 110))  # starts on an odd row
    a = ad.AnnData(np.zeros((len(window), 1), np.float32))
    a.obs["array_row"], a.obs["array_col"] = window[:, 0], window[:, 1]
    index = grid.grid_index(a)
    assert grid.is_hexagonal(window[:, 0], window[:, 1]) and grid.grid_extent(a) == 7
    np.testing.assert_array_equal(index.col - index.col.min(), window[:, 1] // 2 - 48)
    square = lattice(range(6), range(6))
    b = ad.AnnData(np.zeros((36, 1), np.float32))
    b.obs["array_row"], b.obs["array_col"] = np.repeat(np.arange(6), 6), np.tile(np.arange(6), 6)
    assert not grid.is_hexagonal(b.obs["array_row"].to_numpy(), b.obs["array_col"].to_numpy())
    assert grid.is_hexagonal(square[:, 0], square[:, 1])


# ------------------------------------------------------------------ reading Space Ranger's files


def test_the_files_are_found_by_role_in_the_outs_or_the_run_folder(outs, tmp_path):
    f = files(outs)
    assert f == {"matrix": str(outs / "filtered_feature_bc_matrix.h5"),
                 "positions": str(outs / "spatial" / "tissue_positions.csv"),
                 "scalefactors": str(outs / "spatial" / "scalefactors_json.json"),
                 "hires_image": str(outs / "spatial" / "tissue_hires_image.png"),
                 "lowres_image": str(outs / "spatial" / "tissue_lowres_image.png")}
    assert files(outs.parent)["matrix"] == f["matrix"]  # the run folder holding outs/
    assert files(outs, count_file="raw")["matrix"] == str(outs / "raw_feature_bc_matrix.h5")
    assert files(outs, annotation="/x/clusters.csv")["annotation"] == "/x/clusters.csv"
    sr1 = write_spaceranger(tmp_path / "sr1", planted_slide(), version=1)
    assert files(sr1)["positions"] == str(sr1 / "spatial" / "tissue_positions_list.csv")
    key = "datasets.v.source.visium"
    (sr1 / "spatial" / "tissue_lowres_image.png").unlink()
    assert "lowres_image" not in files(sr1)  # the images are optional
    for remove, message in (
        ("filtered_feature_bc_matrix.h5", f"'{key}.path': {sr1} has no filtered_feature_bc_matrix.h5 "
                                          f"(Space Ranger's matrix file)"),
        ("spatial/scalefactors_json.json", "has no spatial/scalefactors_json.json (Space Ranger's scalefactors"),
        ("spatial/tissue_positions_list.csv", "has no spatial/tissue_positions.csv or "
                                              "spatial/tissue_positions_list.csv"),
    ):
        broken = tmp_path / f"broken-{remove.replace('/', '-')}"
        shutil.copytree(sr1, broken)
        (broken / remove).unlink()
        with pytest.raises(ConfigError, match=message.replace(str(sr1), str(broken)).replace("(", r"\(")
                           .replace(")", r"\)").replace(".", r"\.")):
            files(broken)
    with pytest.raises(ConfigError, match=f"'{key}.path': .*has no raw_feature_bc_matrix.h5 .* it has "
                                          f"filtered_feature_bc_matrix.h5: set '{key}.count_file: filtered'"):
        files(sr1, count_file="raw")
    hd = tmp_path / "hd"
    shutil.copytree(sr1, hd)
    (hd / "spatial" / "tissue_positions_list.csv").rename(hd / "spatial" / "tissue_positions.parquet")
    with pytest.raises(ConfigError, match="tissue_positions.parquet, as Visium HD's binned outputs have"):
        files(hd)
    with pytest.raises(ConfigError, match=f"'{key}.path': {tmp_path / 'nowhere'} is not a folder"):
        files(tmp_path / "nowhere")


def test_the_reader_gives_what_scanpy_read_visium_gives(outs, slide):
    import scanpy as sc

    ours = read(outs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = sc.read_visium(outs)
    assert list(ours.obs_names) == list(theirs.obs_names)
    assert list(ours.obs.columns) == ["in_tissue", "array_row", "array_col"]
    np.testing.assert_array_equal(ours.obs.to_numpy(), theirs.obs.to_numpy())
    np.testing.assert_array_equal(ours.obsm["spatial"], theirs.obsm["spatial"])
    mine, scanpys = ours.uns["spatial"]["slide1"], theirs.uns["spatial"]["slide1"]  # the matrix's library id
    assert mine["scalefactors"] == scanpys["scalefactors"]
    for key in ("hires", "lowres"):
        assert mine["images"][key].dtype == np.uint8
        np.testing.assert_allclose(mine["images"][key] / 255, scanpys["images"][key], atol=1e-6)
    assert mine["metadata"]["software_version"] == "spaceranger-2.1.0"
    # Space Ranger's documented columns: obsm["spatial"] is (x, y) = (pxl_col_in_fullres, pxl_row_in_fullres)
    y, x = slide.pixels
    keep = slide.in_tissue
    np.testing.assert_array_equal(ours.obsm["spatial"], np.round(np.stack([x[keep], y[keep]], axis=1)))
    np.testing.assert_array_equal(ours.obs["array_row"], slide.rowcol[keep, 0])
    # the counts, with the two features named DUP summed (and their ids kept)
    counts = ours.layers["counts"].toarray()
    np.testing.assert_array_equal(counts[:, list(ours.var_names).index("DISC")], slide.counts[keep, 0])
    np.testing.assert_array_equal(counts[:, list(ours.var_names).index("DUP")],
                                  slide.counts[keep, 3] + slide.counts[keep, 4])
    assert ours.var.loc["DUP", "gene_ids"] == f"{slide.gene_ids[3]};{slide.gene_ids[4]}"
    assert list(ours.uns["csm_merged_genes"]["from"]) == [f"features {slide.gene_ids[3]}, {slide.gene_ids[4]}"]
    with pytest.raises(InputDataError, match=f"gene 'DUP' is given twice \\(features {slide.gene_ids[3]} and "
                                             f"{slide.gene_ids[4]}\\).*duplicate_genes: sum"):
        read(outs, duplicate_genes="refuse")


def test_space_ranger_1_and_2_positions_raw_and_filtered_matrices_give_one_anndata(outs, slide, tmp_path):
    two = read(outs)
    sr1 = write_spaceranger(tmp_path / "sr1", slide, version=1, raw=True, disc_spots=slide.counts[:, 0] > 0)
    one = read(sr1)
    raw = read(outs, count_file="raw")
    for other in (one, raw):
        assert list(other.obs_names) == list(two.obs_names)
        np.testing.assert_array_equal(other.obsm["spatial"], two.obsm["spatial"])
        np.testing.assert_array_equal(other.obs.to_numpy(), two.obs.to_numpy())
        np.testing.assert_array_equal(other.layers["counts"].toarray(), two.layers["counts"].toarray())
    # the raw matrix holds every spot of the slide: all of them with in_tissue_only: false
    everything = read(outs, count_file="raw", in_tissue_only=False)
    assert everything.n_obs == len(slide.rowcol) == two.n_obs + int((~slide.in_tissue).sum())
    assert set(everything.obs["in_tissue"]) == {0, 1}
    # a header is recognised by content, whatever the file is called
    with_header = (outs / "spatial" / "tissue_positions.csv").read_text()
    (sr1 / "spatial" / "tissue_positions_list.csv").write_text(with_header)
    np.testing.assert_array_equal(read(sr1).obsm["spatial"], two.obsm["spatial"])


def test_the_library_id_is_the_configs_the_matrix_files_or_the_datasets(outs, tmp_path, slide):
    assert list(read(outs).uns["spatial"]) == ["slide1"]
    assert list(read(outs, library_id="mine").uns["spatial"]) == ["mine"]
    bare = write_spaceranger(tmp_path / "bare", slide, library_id=None)
    assert list(read(bare, default_library_id="section7").uns["spatial"]) == ["section7"]


def test_the_spots_sit_on_the_he_where_space_ranger_put_them(outs, slide, tmp_path):
    """The DISC spots are painted green on the H&E at their full-resolution pixels: scanpy's drawing
    and ours put exactly those spots on green (a swap of x and y, or a wrong scale, would not)."""
    import matplotlib.pyplot as plt
    import scanpy as sc

    from concept_saliency.plotting_spatial import tissue_layout

    adata = read(outs)
    disc = adata.layers["counts"].toarray()[:, 0] > 0
    assert 10 < disc.sum() < adata.n_obs - 10
    hires = adata.uns["spatial"]["slide1"]["images"]["hires"]
    xy = np.round(adata.obsm["spatial"] * HIRES_SCALEF).astype(int)
    np.testing.assert_array_equal(is_green(hires[xy[:, 1], xy[:, 0]]), disc)
    assert not is_green(hires[xy[:, 0].clip(0, hires.shape[0] - 1), xy[:, 1].clip(0, hires.shape[1] - 1)]).all()
    coords, image, diameter = tissue_layout(adata)  # our figures
    assert image is hires or np.array_equal(image, hires)
    assert diameter == pytest.approx(110 * HIRES_SCALEF)
    c = np.round(coords).astype(int)
    np.testing.assert_array_equal(is_green(image[c[:, 1], c[:, 0]]), disc)
    adata.obs["disc"] = disc.astype(float)
    ax = sc.pl.spatial(adata, color="disc", show=False)[0]  # scanpy's figure
    shown = ax.images[0].get_array()
    centres = np.array([(p.vertices.max(0) + p.vertices.min(0)) / 2 for p in ax.collections[0].get_paths()])
    values = np.asarray(ax.collections[0].get_array())
    c = np.round(centres).astype(int)
    np.testing.assert_array_equal(is_green(shown[c[:, 1], c[:, 0]]), values > 0.5)
    plt.close("all")


def test_a_planted_pattern_comes_out_where_it_was_planted(outs, slide, tmp_path):
    """DISC, LINE and EDGE are expressed on known spots only: in samples.h5 they are on exactly those
    spots' pixels (the lattice rule), and back on exactly those spots in spatial.h5ad."""
    data = tmp_path / "data"
    f = files(outs)
    run_stage("prepare_spatial", ("samples", "anndata", "grid"), samples=str(data / "samples.h5"),
              anndata=str(data / "spatial.h5ad"), grid=str(data / "grid.h5"),
              normalisation={"method": "scale"}, grid_size="auto", validation_fraction=0.1, seed=0,
              presets=["paper-mob"], options={"in_tissue_only": True, "library_id": None},
              library_id="v", **f)
    adata = read_anndata(data / "spatial.h5ad")
    with h5py.File(data / "samples.h5") as h5:
        ids = [i.decode() for i in h5["ids"][()]]
        images = h5["x"][()]
    assert images.shape == (len(ids), 16, 16, 1)  # 12 rows x 16 halved columns -> 16 x 16
    keep = slide.in_tissue
    rowcol = slide.rowcol[keep]
    # the rule, written out: pixel row = array_row - 30 + (16 - 12) // 2; pixel column = array_col // 2 - 25
    expected = {code: (r - 30 + 2, c // 2 - 25) for code, (r, c) in zip(np.asarray(slide.barcodes)[keep], rowcol)}
    assert list(adata.obs_names) == list(expected)
    for gene, planted in (("DISC", slide.counts[keep, 0] > 0), ("LINE", rowcol[:, 0] == 38),
                          ("EDGE", rowcol[:, 1] <= 51)):
        image = images[ids.index(gene), ..., 0]
        on = {tuple(p) for p in np.argwhere(image > 0).tolist()}
        assert on == {expected[b] for b in adata.obs_names[planted]}, gene
        x = np.asarray(adata.X)[:, list(adata.var_names).index(gene)]
        np.testing.assert_array_equal(x > 0, planted)  # back on the spots
        index, _ = grid.read_grid(data / "grid.h5")
        np.testing.assert_array_equal(grid.pixels_to_spots(image[None, ..., None], index)[0], x)
    # the line of row 38 is one unbroken row of pixels; the zig-zag edge (columns 50 and 51) one column
    assert {c for r, c in np.argwhere(images[ids.index("LINE"), ..., 0] > 0).tolist()} == set(range(16))
    edge = np.argwhere(images[ids.index("EDGE"), ..., 0] > 0)
    assert set(edge[:, 1].tolist()) == {0} and set(edge[:, 0].tolist()) == set(range(2, 14))
    # the disc's spots lie within its radius on the tissue
    centre = adata.obsm["spatial"][list(adata.obs_names).index(slide.barcodes[
        int(np.nonzero((slide.rowcol == [35, 61]).all(axis=1))[0][0])])]
    disc = np.asarray(adata.X)[:, list(adata.var_names).index("DISC")] > 0
    distance = np.hypot(*(adata.obsm["spatial"] - centre).T)
    assert distance[disc].max() <= 520 + 1 and distance[~disc].min() > 520 - 1


def test_visium_sums_duplicate_symbols_by_default_and_takes_its_options():
    def config(**visium_extra):
        return {"datasets": {"v": {"type": "spatial", "source": {"visium": {"path": "/x", **visium_extra}},
                                   "models": {"m": {"preset": "paper-mob"}},
                                   "concepts": {"gene_sets": {"a": ["DISC"]}}}}}

    done = validate_config(config(), SCHEMA)["datasets"]["v"]
    assert done["normalisation"]["duplicate_genes"] == "sum"
    assert done["source"]["visium"] == {"path": "/x", "count_file": "filtered", "in_tissue_only": True,
                                        "library_id": None}
    written = config()
    written["datasets"]["v"]["normalisation"] = {"duplicate_genes": "refuse"}
    assert validate_config(written, SCHEMA)["datasets"]["v"]["normalisation"]["duplicate_genes"] == "refuse"
    with pytest.raises(ConfigError, match="'datasets.v.source.visium.count_file': 'all' is not one of"):
        validate_config(config(count_file="all"), SCHEMA)
    grounded = config()
    grounded["datasets"]["v"]["localisation"] = {"enabled": True}
    with pytest.raises(ConfigError, match="localisation.enabled': the data know no regions"):
        validate_config(grounded, SCHEMA)
    grounded = config(annotation="/x/clusters.csv")
    grounded["datasets"]["v"]["localisation"] = {"enabled": True}
    validate_config(grounded, SCHEMA)


# ------------------------------------------------------------------ through Snakemake


@pytest.fixture(scope="module")
def visium_run(tmp_path_factory, slide):
    """A Space Ranger 1 folder (no header) with Space Ranger's clusters.csv, through Snakemake."""
    from workflow_run import copy_workflow, snakemake

    work = copy_workflow(tmp_path_factory.mktemp("visium"))
    outs = write_spaceranger(work / "run1" / "outs", slide, version=1, disc_spots=slide.counts[:, 0] > 0)
    clusters = work / "run1" / "outs" / "analysis" / "clustering" / "graphclust" / "clusters.csv"
    clusters.parent.mkdir(parents=True)
    disc = slide.counts[:, 0] > 0
    clusters.write_text("Barcode,Cluster\n" + "".join(
        f"{b},{1 if d else 2}\n" for b, d, t in zip(slide.barcodes, disc, slide.in_tissue) if t))
    config = {
        "results": "results",
        "saliency": {"methods": {"vanilla_gradient": {}}},
        "evaluation": {"randomisation_samples": 2, "curve_steps": 4},
        "datasets": {"slide": {
            "type": "spatial",
            "source": {"visium": {"path": str(work / "run1"), "annotation": str(clusters)}},
            "normalisation": {"method": "log1p-scale"},
            "validation_fraction": 0.2,
            "models": {"paper": {"preset": "paper-mob", "epochs": 2, "batch_size": 16}},
            "concepts": {"gene_sets": {"disc": ["DISC", "LINE"]}, "regions": {"cluster1": "1"},
                         "n_markers": 3},
            "explain": {"top_k": 2},
        }},
    }
    (work / "visium.yaml").write_text(yaml.safe_dump(config))
    snakemake(work, "--cores", "2", "--configfile", "visium.yaml", timeout=600)
    return work, work / "results" / "slide", outs


@pytest.mark.workflow
def test_a_space_ranger_folder_runs_through_the_workflow(visium_run, slide):
    import anndata as ad

    from workflow_run import planned_jobs

    work, results, outs = visium_run
    keep = slide.in_tissue
    with h5py.File(results / "data" / "samples.h5") as f:
        assert f["x"].shape == (slide.counts.shape[1] - 1, 16, 16, 1)  # DUP summed
    prov = json.loads((results / "data" / "samples.h5.prov.json").read_text())
    assert set(prov["inputs"]) >= {"matrix", "positions", "scalefactors", "hires_image", "lowres_image",
                                   "annotation"}
    assert prov["parameters"]["normalisation"]["duplicate_genes"] == "sum"
    assert prov["summary"]["merged_genes"] == {"DUP": f"features {slide.gene_ids[3]}, {slide.gene_ids[4]}"}
    tissue = ad.read_h5ad(results / "paper" / "maps.h5ad")
    assert tissue.n_obs == int(keep.sum()) and list(tissue.obs_names) == list(np.asarray(slide.barcodes)[keep])
    library = tissue.uns["spatial"]["slide1"]
    assert library["images"]["hires"].shape == (1500, 2000, 3)
    assert library["scalefactors"]["tissue_hires_scalef"] == HIRES_SCALEF
    np.testing.assert_array_equal(tissue.obsm["spatial"][:, 1], np.round(slide.pixels[0][keep]))
    assert set(tissue.obs["region"]) == {"1", "2"}
    disc = np.asarray(tissue.X)[:, list(tissue.var_names).index("DISC")] > 0
    np.testing.assert_array_equal(disc, slide.counts[keep, 0] > 0)  # back on the planted spots
    np.testing.assert_array_equal(tissue.obs["region"] == "1", disc)
    for concept in ("disc", "cluster1"):
        for what in ("vanilla_gradient", "decoded"):
            assert np.isfinite(tissue.obs[f"csm_{concept}_{what}"]).all()
        assert (results / "paper" / "figures" / f"{concept}.png").stat().st_size > 20_000
    # editing a file of the outs folder reruns the prepare stage (a spot moved by one pixel)
    assert planned_jobs(work, "--configfile", "visium.yaml") == {}
    positions = outs / "spatial" / "tissue_positions_list.csv"
    lines = positions.read_text().splitlines()
    fields = lines[0].split(",")
    lines[0] = ",".join([*fields[:5], str(int(fields[5]) + 1)])
    positions.write_text("\n".join(lines) + "\n")
    assert "prepare_spatial" in planned_jobs(work, "--configfile", "visium.yaml")
