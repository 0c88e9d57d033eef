"""Demo data generators, image packing, spatial transcriptomics to AnnData and the spot grid."""

import re

import numpy as np
import pytest

from concept_saliency.data import grid, spatial, spot_annotation, st_counts
from concept_saliency.data.images import pack_image_folder
from concept_saliency.data.label_table import read_label_table
from concept_saliency.data.samples import VALIDATION, SampleStore, assign_split
from concept_saliency.data.synthetic import (SHAPE_ATTRIBUTES, make_layered_tissue, make_shapes,
                                             write_shapes, write_tissue)
from concept_saliency.errors import InputDataError


def test_shapes_are_deterministic_and_attributes_live_in_their_quadrant():
    a, b = make_shapes(60, seed=4), make_shapes(60, seed=4)
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(a.images, make_shapes(60, seed=5).images)
    assert a.images.shape == (60, 32, 32, 3) and a.images.dtype == np.uint8
    # a mask exists exactly where the attribute is present, inside its own quadrant
    np.testing.assert_array_equal(a.masks.any(axis=(2, 3)), a.labels)
    quadrants = [(slice(0, 16), slice(0, 16)), (slice(0, 16), slice(16, 32)),
                 (slice(16, 32), slice(0, 16)), (slice(16, 32), slice(16, 32))]
    for k, (rows, cols) in enumerate(quadrants):
        inside = a.masks[:, k][:, rows, cols].sum()
        assert inside == a.masks[:, k].sum() > 0
    # the red square is red where its mask is
    i = int(np.nonzero(a.labels[:, 0])[0][0])
    red = a.images[i][a.masks[i, 0]].astype(int)
    assert (red[:, 0] > 200).all() and (red[:, 2] < 60).all()


def test_tissue_layers_drive_their_genes():
    t = make_layered_tissue(n_layers=3, genes_per_layer=5, n_housekeeping=2, n_noise=4, seed=1)
    assert t.counts.shape == (len(t.layer), 3 * 5 + 2 + 4)
    assert set(np.unique(t.layer)) == {0, 1, 2}
    for k in range(3):
        genes = t.gene_layer == k
        inside = t.counts[t.layer == k][:, genes].mean()
        outside = t.counts[t.layer != k][:, genes].mean()
        assert inside > 3 * outside
    names = t.spot_names
    assert len(set(names)) == len(names) and "x" in names[0]


def test_image_folder_packs_to_a_sample_store(tmp_path):
    data = make_shapes(30, seed=2)
    write_shapes(data, tmp_path / "images", tmp_path / "attrs.tsv", tmp_path / "masks.h5")
    summary = pack_image_folder(tmp_path / "images", tmp_path / "attrs.tsv", tmp_path / "s.h5",
                                32, 0.2, seed=0, block=7)
    assert summary == {"images": 30, "attributes": list(SHAPE_ATTRIBUTES)}
    with SampleStore(str(tmp_path / "s.h5")) as store:
        np.testing.assert_allclose(store.read(), data.images / 255.0, atol=1e-6)
        np.testing.assert_array_equal(store.labels, data.labels)
        assert store.ids == data.ids
        assert (store.split == VALIDATION).sum() == 6
        # reads in any order, with duplicates
        np.testing.assert_array_equal(store.read(np.array([5, 1, 5])), store.read()[[5, 1, 5]])


SPELLINGS = {  # one table, as different programs write it
    "plain.csv": "image,Smiling,Male\na.png,1,-1\nb.png,-1,1\n",
    "r-and-excel.csv": '"image","Smiling","Male"\r\n"a.png",1,-1\r\n"b.png",-1,1\r\n',
    "spaces.csv": "image, Smiling , Male\na.png, 1, -1\n b.png ,-1 ,1\n",
    "excel-bom.csv": "\ufeffimage,Smiling,Male\r\na.png,1,-1\r\nb.png,-1,1\r\n",
    "stray-separators.csv": "image,Smiling,Male,,\na.png,1,-1,,\nb.png,-1,1,\n,,,,\n",
    "blank-lines.csv": "\nimage,Smiling,Male\n\na.png,1,-1\n\nb.png,-1,1\n\n",
    "old-mac.csv": "image,Smiling,Male\ra.png,1,-1\rb.png,-1,1\r",
    "decimals.csv": "image,Smiling,Male\na.png,1.0,-1.0\nb.png,-1.00,+1\n",
    "zero-one.csv": "image,Smiling,Male\na.png,1,0\nb.png,0,1\n",
    "tabs.tsv": "image\tSmiling\tMale\na.png\t1\t-1\nb.png\t-1\t1\n",
    "tabs.txt": "image\tSmiling\tMale\na.png\t1\t-1\nb.png\t-1\t1\n",
    "commas.txt": "image,Smiling,Male\na.png,1,-1\nb.png,-1,1\n",
    "dot-slash.csv": "image,Smiling,Male\n./a.png,1,-1\nb.png,-1,1\n",
}


@pytest.mark.parametrize("name", SPELLINGS)
def test_a_label_table_reads_the_same_however_it_is_written(tmp_path, name):
    from concept_saliency.config import table_attributes

    path = tmp_path / name
    path.write_bytes(SPELLINGS[name].encode("utf-8"))
    table = read_label_table(path)
    assert table.attributes == ("Smiling", "Male")
    assert table.images == ("a.png", "b.png") and table.ids == ("a", "b")
    assert table.positive == ((True, False), (False, True))
    assert table_attributes(path) == ["Smiling", "Male"]  # the DAG build reads it the same way


BAD_TABLES = [
    ("t.tsv", "image,Smiling\na.png,1\n", ["line 1 is separated by commas", "rename the file to .csv"]),
    ("t.csv", "image\tSmiling\na.png\t1\n", ["separated by tabs", "rename the file to .tsv"]),
    ("t.csv", "image,Smiling,Male,Smiling\na.png,1,1,1\n", ["columns 2 and 4 are both named 'Smiling'"]),
    ("t.csv", "image,Smiling,smiling\na.png,1,1\n", ["columns 2 and 3 differ only in case",
                                                     "'Smiling' and 'smiling'"]),
    ("t.csv", "image,Caf\u00e9,Cafe\u0301\na.png,1,1\n", ["columns 2 and 3 differ only in case or accents"]),
    ("t.csv", "image,a/b\na.png,1\n", ["line 1, column 2 name 'a/b' holds a '/'", "rename the column"]),
    ("t.csv", "image,a\\b\na.png,1\n", ["holds a '\\'"]),
    ("t.csv", "image,.\na.png,1\n", ["is named '.'"]),
    ("t.csv", "image,Smiling,..\na.png,1,1\n", ["column 3 is named '..'"]),
    ("t.csv", "image,{x}\na.png,1\n", ["holds a '{'"]),
    ("t.csv", "image,a\x01b\na.png,1\n", ["control character"]),
    ("t.csv", "image," + "\u00e9" * 101 + "\na.png,1\n", ["202 bytes long", "at most 200"]),
    ("t.csv", "image,,Male\na.png,1,1\n", ["column 2 has no name"]),
    ("t.csv", "image,Smiling,\na.png,1,1\n", ["line 2: column 3 holds '1' but has no name"]),
    ("t.csv", "image,Smiling\na.png,1\nb.png,0\nc.png,-1\n", ["column 'Smiling' holds both -1 (line 4) "
                                                              "and 0 (line 3)"]),
    ("t.tsv", "image\tSmiling\na.png\t1\nb.png\t2\n", ["t.tsv: line 3, column 'Smiling', image 'b.png': "
                                                       "value '2' is not -1, 0 or 1"]),
    ("t.csv", "image,Smiling\na.png,TRUE\n", ["value 'TRUE'"]),
    ("t.csv", "image,Smiling\na.png,1e0\n", ["value '1e0'"]),
    ("t.csv", "image,Smiling,Male\na.png,1\n", ["line 2 has 2 field(s) but the header has 3"]),
    ("t.csv", "image,Smiling\na.png,1,1\n", ["line 2 has 3 field(s) but the header has 2"]),
    ("t.csv", "image,Smiling\n../a.png,1\n", ["line 2: image name '../a.png' points outside the images folder"]),
    ("t.csv", "image,Smiling\nx/../../a.png,1\n", ["points outside"]),
    ("t.csv", "image,Smiling\n/data/a.png,1\n", ["line 2: image name '/data/a.png' is an absolute path"]),
    ("t.csv", "image,Smiling\nC:/data/a.png,1\n", ["is an absolute path"]),
    ("t.csv", "image,Smiling\nsub\\a.png,1\n", ["write '/' between folders"]),
    ("t.csv", "image,Smiling\na.png,1\n./a.png,-1\n", ["'a.png' appears more than once (lines 2 and 3)"]),
    ("t.csv", "image,Smiling\nf0.png,1\nf0.jpg,-1\n", ["lines 2 and 3 give 'f0.png' and 'f0.jpg' the same "
                                                       "sample id 'f0'", "rename one"]),
    ("t.csv", "image,Smiling\n", ["lists no images"]),
    ("t.csv", "", ["the table is empty"]),
    ("t.csv", "a.png,1,-1\nb.png,-1,1\n", ["line 1 looks like a data row", "needs a header row"]),
    ("t.csv", 'image,"Smi"ling\na.png,1\n', ["line 1: cannot read the row"]),
]


@pytest.mark.parametrize("name, text, parts", BAD_TABLES, ids=[f"{i}" for i in range(len(BAD_TABLES))])
def test_a_bad_label_table_is_refused_with_one_line_naming_the_line(tmp_path, name, text, parts):
    from concept_saliency.config import table_attributes
    from concept_saliency.errors import ConfigError

    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputDataError) as info:
        read_label_table(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path)), message
    for part in parts:
        assert part in message, message
    # the DAG build refuses it the same way, naming the config key
    with pytest.raises(ConfigError, match=r"^config key 'x\.labels': " + re.escape(message) + "$"):
        table_attributes(path, "x.labels")


def test_a_label_table_that_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes("image,Caf\u00e9\na.png,1\n".encode("latin-1"))
    with pytest.raises(InputDataError, match=r"t\.csv: line 1: not UTF-8 text \(byte 0xe9\)"):
        read_label_table(path)


def test_sample_ids_keep_the_folder_and_drop_the_suffix(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("image,Smiling\na/x.png,1\nb/x.png,-1\nx.tar.png,1\nnosuffix,1\n")
    assert read_label_table(path).ids == ("a/x", "b/x", "x.tar", "nosuffix")


def test_split_is_deterministic():
    a = assign_split(100, 0.2, seed=3)
    np.testing.assert_array_equal(a, assign_split(100, 0.2, seed=3))
    assert (a == VALIDATION).sum() == 20


def test_st_counts_to_anndata_normalisation_and_grid_round_trip(tmp_path):
    t = make_layered_tissue(seed=2)
    write_tissue(t, tmp_path / "counts.tsv.gz", tmp_path / "spots.tsv")
    counts = st_counts.read_st_counts(tmp_path / "counts.tsv.gz")
    adata = spatial.counts_to_anndata(counts)
    np.testing.assert_array_equal(adata.layers["counts"], t.counts)
    np.testing.assert_allclose(adata.obsm["spatial"][:, 0], np.round(t.spot_x, 3))
    adata, removed = spatial.normalise(adata, "scale", min_spots=1)
    x = np.asarray(adata.X)
    assert x.min() == 0.0 and np.allclose(x.max(axis=0), 1.0)
    index = grid.grid_index(adata)
    assert index.shape == (32, 32)
    images = grid.genes_to_images(adata, index)
    assert images.shape == (adata.n_vars, 32, 32, 1)
    # spot -> pixel -> spot gives back every spot's value
    np.testing.assert_allclose(grid.pixels_to_spots(images, index), x.T)
    assert images.sum() == pytest.approx(x.sum(), rel=1e-5)
    regions = spot_annotation.read_spot_annotation(tmp_path / "spots.tsv", list(adata.obs_names))
    assert set(regions) == {"layer1", "layer2", "layer3", "layer4"}


def test_st_parser_errors(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("\tGeneA\tGeneB\n1.0x2.0\t1\t2\n3.5-2\t0\t1\n")
    with pytest.raises(InputDataError, match="spot '3.5-2' is not an array position"):
        st_counts.read_st_counts(bad)
    bad.write_text("\tGeneA\n1.0x2.0\t-1\n")
    with pytest.raises(InputDataError, match="line 2, spot .1.0x2.0., gene .GeneA.: -1 is negative"):
        st_counts.read_st_counts(bad)


def test_real_mob_counts_parse(data_dir):
    path = data_dir / "mob" / "Rep11_MOB_count_matrix-1.tsv.gz"
    counts = st_counts.read_st_counts(path)
    assert counts.shape == (262, 16218)
    assert "X2010300C02Rik" in counts.columns and "Penk" in counts.columns
    adata = spatial.counts_to_anndata(counts)
    assert 7.85 <= adata.obs["array_x"].min() < 8.5 and 27.5 < adata.obs["array_x"].max() <= 28.1
    index = grid.grid_index(adata)
    assert index.shape == (32, 32)


def test_the_image_manifest_is_rewritten_exactly_when_an_image_changes(tmp_path):
    import os

    from PIL import Image

    from concept_saliency.artifacts import check_provenance_format
    from concept_saliency.data.manifest import manifest_folder, write_image_manifest

    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        Image.new("RGB", (4, 4), (i, 0, 0)).save(images / f"{i}.png")
    Image.new("RGB", (4, 4)).save(tmp_path / "target.png")
    (images / "linked.png").symlink_to(tmp_path / "target.png")
    labels = tmp_path / "labels.csv"
    labels.write_text("image,A\n0.png,1\n1.png,-1\n2.png,1\nlinked.png,1\n")
    manifest = tmp_path / "results" / "raw" / "image_manifest.tsv"

    def write_and_stamp():
        old = 10**18  # an old mtime: a rewrite would replace it
        if manifest.exists():
            os.utime(manifest, ns=(old, old))
        write_image_manifest(images, labels, manifest)
        return manifest.stat().st_mtime_ns != old

    assert write_and_stamp()
    assert manifest_folder(manifest) == str(images)
    check_provenance_format(manifest, "csm.image-manifest")
    assert "\n1.png\t" in manifest.read_text() and "linked.png" in manifest.read_text()
    assert not write_and_stamp()  # nothing changed: the file (and its mtime) stay
    (images / "notes.txt").write_text("not named in the table")
    assert not write_and_stamp()
    for edit in (lambda: Image.new("RGB", (4, 4), (9, 9, 9)).save(images / "1.png"),  # rewritten in place
                 lambda: os.utime(tmp_path / "target.png", ns=(1, 1))):  # a link's target touched
        edit()
        assert write_and_stamp()
