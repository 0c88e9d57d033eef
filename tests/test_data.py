"""Demo data generators, image packing, spatial transcriptomics to AnnData and the spot grid."""


import numpy as np
import pytest

from concept_saliency.data import spatial
from concept_saliency.data.images import pack_image_folder, read_label_table
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


def test_label_table_errors_name_file_column_and_row(tmp_path):
    bad = tmp_path / "labels.tsv"
    bad.write_text("image\tSmiling\na.png\t1\nb.png\t2\n")
    with pytest.raises(InputDataError, match="labels.tsv: column 'Smiling', image 'b.png': value '2'"):
        read_label_table(bad)
    bad.write_text("image\tSmiling\na.png\t1\na.png\t-1\n")
    with pytest.raises(InputDataError, match="image 'a.png' appears more than once"):
        read_label_table(bad)


def test_split_is_deterministic():
    a = assign_split(100, 0.2, seed=3)
    np.testing.assert_array_equal(a, assign_split(100, 0.2, seed=3))
    assert (a == VALIDATION).sum() == 20


def test_st_counts_to_anndata_normalisation_and_grid_round_trip(tmp_path):
    t = make_layered_tissue(seed=2)
    write_tissue(t, tmp_path / "counts.tsv.gz", tmp_path / "spots.tsv")
    counts = spatial.read_st_counts(tmp_path / "counts.tsv.gz")
    adata = spatial.counts_to_anndata(counts)
    np.testing.assert_array_equal(adata.layers["counts"], t.counts)
    np.testing.assert_allclose(adata.obsm["spatial"][:, 0], np.round(t.spot_x, 3))
    adata, removed = spatial.normalise(adata, "scale", min_spots=1)
    x = np.asarray(adata.X)
    assert x.min() == 0.0 and np.allclose(x.max(axis=0), 1.0)
    index = spatial.grid_index(adata)
    assert index.shape == (32, 32)
    images = spatial.genes_to_images(adata, index)
    assert images.shape == (adata.n_vars, 32, 32, 1)
    # spot -> pixel -> spot gives back every spot's value
    np.testing.assert_allclose(spatial.pixels_to_spots(images, index), x.T)
    assert images.sum() == pytest.approx(x.sum(), rel=1e-5)
    regions = spatial.read_spot_annotation(tmp_path / "spots.tsv", list(adata.obs_names))
    assert set(regions) == {"layer1", "layer2", "layer3", "layer4"}


def test_st_parser_errors(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("\tGeneA\tGeneB\n1.0x2.0\t1\t2\n3.5-2\t0\t1\n")
    with pytest.raises(InputDataError, match="spot '3.5-2' is not an array position"):
        spatial.read_st_counts(bad)
    bad.write_text("\tGeneA\n1.0x2.0\t-1\n")
    with pytest.raises(InputDataError, match="line 2, spot .1.0x2.0., gene .GeneA.: -1 is negative"):
        spatial.read_st_counts(bad)


def test_real_mob_counts_parse(data_dir):
    path = data_dir / "mob" / "Rep11_MOB_count_matrix-1.tsv.gz"
    counts = spatial.read_st_counts(path)
    assert counts.shape == (262, 16218)
    assert "X2010300C02Rik" in counts.columns and "Penk" in counts.columns
    adata = spatial.counts_to_anndata(counts)
    assert 7.85 <= adata.obs["array_x"].min() < 8.5 and 27.5 < adata.obs["array_x"].max() <= 28.1
    index = spatial.grid_index(adata)
    assert index.shape == (32, 32)
