"""Bad Spatial Transcriptomics inputs: each stops the prepare stage with one line naming the
file and the line, spot or gene, and leaves no AnnData, grid or sample store behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from concept_saliency.errors import InputDataError

from helpers import assert_no_partial_artifacts, edit_line, run_stage, user_error

MATRIX = "mob/Rep11_MOB_count_matrix-1.tsv.gz"
# the real alignment of the original release has this shape: scale 0 and 4, shift 6 and 7
ALIGNMENT = "290.0 0.0 0.0 0.0 291.5 0.0 -290.0 -291.0 1.0\n"


@pytest.fixture(scope="module")
def mob_matrix():
    """The real MOB replicate 11: 262 spots x 16218 genes."""
    import pandas as pd

    from helpers import shared_data

    path = shared_data() / MATRIX
    if not path.exists():
        pytest.skip(f"{path} not found (set CSM_TEST_DATA)")
    return pd.read_csv(path, sep="\t", index_col=0)


@pytest.fixture(scope="module")
def real_counts(mob_matrix):
    """The real MOB replicate 11 cut to 262 spots x its 60 most expressed genes."""
    return mob_matrix[mob_matrix.sum().sort_values(ascending=False).index[:60]]


@pytest.fixture
def st(tmp_path, real_counts):
    raw = tmp_path / "raw"
    raw.mkdir()
    counts = raw / "counts.tsv"
    real_counts.to_csv(counts, sep="\t")
    return {"counts": counts, "raw": raw, "results": tmp_path / "results"}


def prepare(st, **kw):
    data = st["results"] / "mob" / "data"
    args = dict(samples=str(data / "samples.h5"), anndata=str(data / "spatial.h5ad"),
                grid=str(data / "grid.h5"), normalisation={"method": "scale"}, grid_size="auto",
                validation_fraction=0.1, seed=0, counts=str(st["counts"]), multiple=8) | kw
    run_stage("prepare_spatial", ("samples", "anndata", "grid"), **args)
    return data


def fails(st, *parts, **kw):
    data = st["results"] / "mob" / "data"
    with user_error(*parts, error=InputDataError) as refusal:
        prepare(st=st, **kw)
    message = refusal.message
    assert not any(data.glob("*")) if data.exists() else True, list(data.glob("*"))
    assert_no_partial_artifacts(st["results"])
    return message


def set_cell(path: Path, lineno: int, column: int, value: str) -> str:
    """Line ``lineno``'s ``column``-th count (1-based) set to ``value``; returns the gene."""
    header = path.read_text().splitlines()[0].split("\t")
    edit_line(path, lineno, lambda l: "\t".join(
        [*l.split("\t")[:column], value, *l.split("\t")[column + 1:]]))
    return header[column]


def test_the_unspoilt_matrix_prepares(st):
    data = prepare(st)
    assert (data / "samples.h5").exists()
    assert_no_partial_artifacts(st["results"])


@pytest.mark.parametrize("spot", ["16.92", "16.92x", "x9.015", "16,92x9,015", "sixteen", "16.9x9.0x3"])
def test_a_malformed_spot_coordinate(st, spot):
    edit_line(st["counts"], 5, lambda l: "\t".join([spot, *l.split("\t")[1:]]))
    fails(st, str(st["counts"]), "line 5", f"'{spot}'", "XxY")


def test_duplicate_spots(st):
    lines = st["counts"].read_text().splitlines()
    lines[9] = lines[3].split("\t")[0] + "\t" + lines[9].split("\t", 1)[1]
    st["counts"].write_text("\n".join(lines) + "\n")
    fails(st, str(st["counts"]), lines[3].split("\t")[0], "appears twice", "lines 4 and 10",
          "one row per spot")


@pytest.mark.parametrize("value, what", [("abc", "is not a number"), ("-3", "is negative"),
                                         ("2.5", "is not an integer"), ("", "missing"),
                                         ("nan", "NaN"), ("inf", "infinite"), ("-inf", "infinite")])
def test_bad_counts(st, value, what):
    gene = set_cell(st["counts"], 7, 3, value)
    fails(st, str(st["counts"]), "line 7", f"gene '{gene}'", what)


@pytest.mark.parametrize("text", ["", "\t\n", "\tPenk\tDoc2g\n"])
def test_an_empty_matrix(st, text):
    st["counts"].write_text(text)
    fails(st, str(st["counts"]), "empty" if not text.strip() else "no spots")


def test_a_binary_file_given_as_the_matrix(st):
    st["counts"].write_bytes(bytes(range(256)) * 64)
    fails(st, str(st["counts"]), "count matrix")


def test_an_all_zero_gene_is_left_out_not_divided_by_zero(st):
    """A gene never detected carries no information: it is dropped (and logged), and every
    other gene is scaled as before; nothing is NaN."""
    import pandas as pd

    from concept_saliency.data.samples import SampleStore

    df = pd.read_csv(st["counts"], sep="\t", index_col=0)
    df["Silent1"] = 0
    df.to_csv(st["counts"], sep="\t")
    data = prepare(st)
    with SampleStore(str(data / "samples.h5")) as store:
        assert "Silent1" not in store.ids and len(store.ids) == 60
        assert np.isfinite(store.read()).all()
    assert_no_partial_artifacts(st["results"])


def test_a_matrix_of_zeros_names_the_file_and_the_filter_settings(st):
    import pandas as pd

    df = pd.read_csv(st["counts"], sep="\t", index_col=0) * 0
    df.to_csv(st["counts"], sep="\t")
    fails(st, str(st["counts"]), "no spots left", "min_counts")


@pytest.mark.parametrize("text, what", [("1 0 0 0 1 0 0 0\n", "found 8"),
                                        ("1 0 0 0 1 0 0 0 1 5\n", "found 10"),
                                        ("scale: 290\n", "9 numbers"), ("", "found 0"),
                                        ("0 0 0 0 0 0 1 1 1\n", "singular")])
def test_an_alignment_file_without_nine_numbers(st, text, what):
    path = st["raw"] / "transformation.txt"
    path.write_text(text)
    fails(st, str(path), "alignment matrix", what, transformation=str(path))


def test_a_missing_he_image(st):
    (st["raw"] / "transformation.txt").write_text(ALIGNMENT)
    missing = st["raw"] / "HE_Rep11.jpg"
    fails(st, str(missing), "cannot read the image", transformation=str(st["raw"] / "transformation.txt"),
          image=str(missing))


def test_an_he_image_that_is_not_an_image(st):
    (st["raw"] / "transformation.txt").write_text(ALIGNMENT)
    fake = st["raw"] / "HE_Rep11.jpg"
    fake.write_text("<html>404 Not Found</html>")
    fails(st, str(fake), "cannot read the image", transformation=str(st["raw"] / "transformation.txt"),
          image=str(fake))


def test_an_he_image_without_its_alignment(st, tmp_path):
    from PIL import Image

    image = st["raw"] / "HE.png"
    Image.new("RGB", (64, 64), "pink").save(image)
    fails(st, "alignment matrix", "transformation", image=str(image))


def test_nan_in_a_users_anndata(st, real_counts):
    import anndata as ad

    x = real_counts.to_numpy(np.float32)
    x[3, 4] = np.nan
    user = ad.AnnData(X=x)
    user.obs_names = list(real_counts.index)
    user.var_names = list(real_counts.columns)
    path = st["raw"] / "user.h5ad"
    user.write_h5ad(path)
    fails(st, str(path), "NaN or infinite", "counts_layer", counts=None, h5ad=str(path))


# ------------------------------------------------------------------ gene names of a count matrix


def rename_gene(path: Path, column: int, name: str) -> str:
    """Line 1's ``column``-th field (1-based: the spot column is 1) set to ``name``; returns the old name."""
    old = path.read_text().splitlines()[0].split("\t")[column - 1]
    edit_line(path, 1, lambda l: "\t".join([*l.split("\t")[:column - 1], name, *l.split("\t")[column:]]))
    return old


def prepared_counts(data: Path):
    """The raw counts of the prepared AnnData as a DataFrame (spots x genes)."""
    import anndata as ad
    import pandas as pd

    a = ad.read_h5ad(data / "spatial.h5ad")
    return pd.DataFrame(np.asarray(a.layers["counts"]), index=a.obs_names, columns=a.var_names)


@pytest.mark.parametrize("spelling", ["{}", " {} "])
def test_a_gene_name_given_twice_is_refused_naming_both_columns(st, real_counts, spelling):
    """pandas would call the second 'Apoe' 'Apoe.1' and a gene set would use one of them."""
    gene = real_counts.columns[2]  # column 4 of the file
    rename_gene(st["counts"], 11, spelling.format(gene))
    fails(st, str(st["counts"]), "line 1", f"gene '{gene}' is given twice", "columns 4 and 11",
          "normalisation.duplicate_genes: sum")


def test_duplicate_genes_sum_adds_their_counts(st, real_counts):
    import json

    gene, other = real_counts.columns[2], real_counts.columns[9]
    rename_gene(st["counts"], 11, gene)
    data = prepare(st, normalisation={"method": "scale", "duplicate_genes": "sum"})
    counts = prepared_counts(data)
    real = real_counts.loc[counts.index]  # one spot has no counts in these 60 genes: filtered
    assert list(counts.columns) == [g for g in real_counts.columns if g != other]  # first column's place
    np.testing.assert_array_equal(counts[gene], real[gene] + real[other])
    np.testing.assert_array_equal(counts.drop(columns=gene), real.drop(columns=[gene, other]))
    record = json.loads((data / "samples.h5.prov.json").read_text())
    assert record["summary"]["merged_genes"] == {gene: "columns 4, 11"}
    assert_no_partial_artifacts(st["results"])


@pytest.mark.parametrize("name", ["", "   "])
def test_an_empty_gene_name_is_refused_naming_the_column(st, name):
    rename_gene(st["counts"], 6, name)
    fails(st, str(st["counts"]), "line 1, column 6", "gene name is empty")


def test_gene_names_differing_in_case_only_are_two_genes(st, real_counts):
    """Symbols are case-sensitive (Drosophila's h and H are two genes): both kept, each its own counts."""
    gene = real_counts.columns[2]
    rename_gene(st["counts"], 11, gene.upper())
    counts = prepared_counts(prepare(st))
    real = real_counts.loc[counts.index]
    np.testing.assert_array_equal(counts[gene], real[gene])
    np.testing.assert_array_equal(counts[gene.upper()], real[real_counts.columns[9]])


# ------------------------------------------------------------------ layout of a count matrix


def test_the_same_spot_written_two_ways_is_refused(st):
    lines = st["counts"].read_text().splitlines()
    x, y = lines[3].split("\t")[0].split("x")
    same = f"{float(x):.4f}x{float(y):.4f}"  # 16.92x9.015 -> 16.9200x9.0150
    edit_line(st["counts"], 10, lambda l: "\t".join([same, *l.split("\t")[1:]]))
    fails(st, str(st["counts"]), f"'{lines[3].split(chr(9))[0]}' (line 4)", f"'{same}' (line 10)",
          "same array position", "one row per spot")


def test_a_transposed_matrix_is_refused_with_a_hint(st, real_counts):
    real_counts.T.to_csv(st["counts"], sep="\t")
    fails(st, str(st["counts"]), "looks transposed", f"'{real_counts.columns[0]}'", "transpose it")


@pytest.mark.parametrize("variant", ["trailing tab", "trailing tab on line 1", "trailing tab on the counts",
                                     "crlf", "crlf and trailing tab", "gzip", "no corner cell"])
def test_harmless_layout_variants_decode_to_the_same_counts(st, real_counts, variant):
    import gzip

    text = st["counts"].read_text()
    lines = text.splitlines()
    if variant in ("trailing tab", "crlf and trailing tab"):
        lines = [line + "\t" for line in lines]
    elif variant == "trailing tab on line 1":
        lines[0] += "\t"
    elif variant == "trailing tab on the counts":
        lines[1:] = [line + "\t" for line in lines[1:]]
    if variant == "no corner cell":
        lines[0] = lines[0].split("\t", 1)[1]
    body = ("\r\n" if "crlf" in variant else "\n").join(lines) + ("\r\n" if "crlf" in variant else "\n")
    if variant == "gzip":
        st["counts"] = st["counts"].with_suffix(".tsv.gz")
        st["counts"].write_bytes(gzip.compress(body.encode()))
    else:
        st["counts"].write_bytes(body.encode())
    counts = prepared_counts(prepare(st))
    assert list(counts.columns) == list(real_counts.columns)
    np.testing.assert_array_equal(counts.to_numpy(), real_counts.loc[counts.index].to_numpy())


def test_a_truncated_gzip_matrix(st):
    import gzip

    packed = gzip.compress(st["counts"].read_bytes())
    st["counts"] = st["counts"].with_suffix(".tsv.gz")
    st["counts"].write_bytes(packed[: len(packed) // 2])
    fails(st, str(st["counts"]), "cannot read the count matrix", "end-of-stream")


def test_a_line_with_more_fields_than_the_others(st):
    edit_line(st["counts"], 7, lambda l: l + "\t3")
    fails(st, str(st["counts"]), "line 7 has 62 tab-separated fields", "line 2 has 61")


def test_a_header_naming_more_columns_than_the_lines_hold(st):
    edit_line(st["counts"], 1, lambda l: l + "\tExtra1\tExtra2")
    fails(st, str(st["counts"]), "line 1 names 63 columns but line 2 has 61")


# ------------------------------------------------------------------ the spot grid


def test_an_outlying_spot_is_named_instead_of_a_huge_grid(st):
    """'3000x9.5' would make a 4096x4096 grid (a 4 GB sample store for 60 genes)."""
    edit_line(st["counts"], 5, lambda l: "\t".join(["3000x9.5", *l.split("\t")[1:]]))
    message = fails(st, str(st["counts"]), "4096x4096", "max_grid 256", "spot '3000x9.5'",
                    "far from the others", "array is 21 across", "raise the dataset's 'max_grid'")
    assert "GB" in message
    # given explicitly, a grid too small for the outlier names it too
    fails(st, str(st["counts"]), "grid_size 32 is smaller", "spot '3000x9.5'", grid_size=32)


def test_a_grid_beyond_max_grid_without_outliers_and_an_explicit_grid_size_beyond_it(st):
    fails(st, str(st["counts"]), "32x32", "exceeds max_grid 16", "no few spots stand out", max_grid=16)
    fails(st, str(st["counts"]), "grid_size 512 exceeds max_grid 256", "'max_grid'", grid_size=512)


def test_negative_array_positions_give_the_same_grid(st, tmp_path):
    from concept_saliency.data.grid import read_grid

    index, _ = read_grid(prepare(st) / "grid.h5")
    lines = st["counts"].read_text().splitlines()
    shifted = [lines[0]] + ["\t".join([f"{float(l.split(chr(9))[0].split('x')[0]) - 40:.3f}x"
                                       f"{float(l.split(chr(9))[0].split('x')[1]) - 40:.3f}", l.split("\t", 1)[1]])
                            for l in lines[1:]]
    st["counts"].write_text("\n".join(shifted) + "\n")
    st["results"] = tmp_path / "shifted"
    moved, _ = read_grid(prepare(st) / "grid.h5")
    assert moved.shape == index.shape == (32, 32) and moved.spots[0].startswith("-")
    np.testing.assert_array_equal(moved.row, index.row)
    np.testing.assert_array_equal(moved.col, index.col)


# ------------------------------------------------------------------ alignment matrix, annotation


@pytest.mark.parametrize("text, what", [
    ("nan 0 0 0 1 0 0 0 1\n", "number 1 of the 9 of the alignment matrix is nan"),
    ("290 0 0 0 291.5 0 -290 inf 1\n", "number 8 of the 9 of the alignment matrix is inf"),
    ("290 0 -290 0 291.5 -291 0 0 1\n", "looks transposed"),
    ("290 0 0.01 0 291.5 0 -290 -291 1\n", "must be 0, 0, 1"),
])
def test_an_alignment_matrix_that_would_place_spots_wrongly(st, text, what):
    path = st["raw"] / "transformation.txt"
    path.write_text(text)
    fails(st, str(path), what, transformation=str(path))


def write_annotation(st, rows: list[str]) -> Path:
    path = st["raw"] / "regions.tsv"
    path.write_text("spot\tregion\n" + "".join(f"{r}\n" for r in rows))
    return path


def test_a_spot_annotated_twice_with_two_regions(st, real_counts):
    spots = list(real_counts.index)
    rows = [f"{s}\t{'A' if k % 2 else 'B'}" for k, s in enumerate(spots)]
    path = write_annotation(st, rows + [f"{spots[3]}\tB"])  # spot 3 (line 5) is in A
    fails(st, str(path), f"line {len(rows) + 2} gives spot '{spots[3]}' region 'B'",
          "line 5 gave the same spot region 'A'", annotation=str(path))
    x, y = spots[3].split("x")
    path = write_annotation(st, rows + [f"{float(x):.4f}x{float(y):.4f}\tB"])
    fails(st, str(path), f"spot '{spots[3]}' (the same position) region 'A'", annotation=str(path))


def test_a_spot_annotated_twice_with_one_region_and_unmatched_spots(st, real_counts, tmp_path):
    from concept_saliency.data.grid import read_grid

    spots = list(real_counts.index)
    rows = [f"{s}\t{'A' if k % 2 else 'B'}" for k, s in enumerate(spots[:100])]
    path = write_annotation(st, rows + [rows[5], "99x99\tA"])
    index, regions = read_grid(prepare(st, annotation=str(path)) / "grid.h5")
    expected = {s: ("A" if k % 2 else "B") if k < 100 else "" for k, s in enumerate(spots)}
    assert regions == [expected[s] for s in index.spots] and "" in regions
    path = write_annotation(st, ["99x99\tA", "98x98\tB"])
    st["results"] = tmp_path / "none"
    fails(st, str(path), "none of its 2 spots", annotation=str(path))


# ------------------------------------------------------------------ a user's .h5ad


def user_anndata(real_counts, path: Path, edit=None) -> Path:
    """The real counts as a Visium-like AnnData: integer array positions, pixel positions, an
    image with its scale factors; ``edit(adata)`` spoils it before it is written."""
    import anndata as ad

    xy = np.array([[float(v) for v in s.split("x")] for s in real_counts.index])
    a = ad.AnnData(X=real_counts.to_numpy(np.float32))
    a.obs_names = [f"spot{k}" for k in range(len(xy))]
    a.var_names = list(real_counts.columns)
    a.obs["array_col"], a.obs["array_row"] = np.round(xy[:, 0]).astype(int), np.round(xy[:, 1]).astype(int)
    a.obs["layer"] = np.where(xy[:, 1] > np.median(xy[:, 1]), "top", "bottom")
    a.obsm["spatial"] = xy * 100.0
    a.uns["spatial"] = {"lib": {"images": {"hires": np.full((300, 400, 3), 200, np.uint8)},
                                "scalefactors": {"tissue_hires_scalef": 0.1, "spot_diameter_fullres": 50.0}}}
    if edit is not None:
        edit(a)
    a.write_h5ad(path)
    return path


def set_obs(key, values):
    def edit(a):
        a.obs[key] = values(a)
    return edit


def set_spatial(entry):
    def edit(a):
        a.uns["spatial"] = entry
    return edit


def set_obsm(values):
    def edit(a):
        a.obsm["spatial"] = values(a)
    return edit


def at_spot(k, value, column):
    """``column`` with ``value`` at spot ``k``."""
    return np.where(np.arange(len(column)) == k, value, column)


def spot_row_nan(a, k):
    out = np.asarray(a.obsm["spatial"], float).copy()
    out[k] = [np.nan, 1.0]
    return out


def rename(axis, positions, name=None):
    """The names at ``positions`` of ``obs`` or ``var`` set to ``name`` (default: the first one's)."""
    def edit(a):
        names = list(getattr(a, f"{axis}_names"))
        for k in positions:
            names[k] = names[positions[0]] if name is None else name
        setattr(a, f"{axis}_names", names)
    return edit


def sparse_nan(a):
    import scipy.sparse as sp

    x = sp.csr_matrix(a.X)
    x.data[5] = np.nan
    a.X = x


_IMAGES = {"hires": np.zeros((30, 40, 3), np.uint8)}
_SCALES = {"tissue_hires_scalef": 0.1}
BAD_ANNDATA = {
    "obsm spatial NaN": (set_obsm(lambda a: spot_row_nan(a, 4)), ["obsm['spatial'] of spot 'spot4'", "finite"]),
    "obsm spatial inf": (set_obsm(lambda a: at_spot(2, np.inf, a.obsm["spatial"][:, 0])[:, None] * [1, 1]),
                         ["obsm['spatial'] of spot 'spot2'", "finite"]),
    "obsm spatial 3 columns": (set_obsm(lambda a: np.ones((a.n_obs, 3))), ["obsm['spatial'] has shape", ", 3)"]),
    "obsm spatial text": (set_obsm(lambda a: np.array([["a", "b"]] * a.n_obs)),
                          ["obsm['spatial'] holds", "not numbers"]),
    "array_row NaN": (set_obs("array_row", lambda a: at_spot(7, np.nan, a.obs["array_row"])),
                      ["obs['array_row'] of spot 'spot7' is missing"]),
    "array_row 3.5": (set_obs("array_row", lambda a: at_spot(3, 12.5, a.obs["array_row"])),
                      ["obs['array_row'] of spot 'spot3' is not a whole number (12.5)"]),
    "array_col text": (set_obs("array_col", lambda a: at_spot(1, "x", a.obs["array_col"].astype(str))),
                       ["obs['array_col'] of spot 'spot1' is not a finite number", "'x'"]),
    "array_col categorical": (set_obs("array_col", lambda a: np.where(a.obs["array_col"] > 20, "edge", "core")),
                              ["obs['array_col'] of spot", "not a finite number"]),
    "array_row boolean": (set_obs("array_row", lambda a: a.obs["array_row"] > 10),
                          ["obs['array_row'] holds true/false"]),
    "uns spatial text": (set_spatial("lib"), ["uns['spatial'] is a str", "not a mapping"]),
    "library not a mapping": (set_spatial({"lib": np.arange(3)}), ["uns['spatial']['lib'] is a ndarray"]),
    "scalefactors a list": (set_spatial({"lib": {"scalefactors": [0.1, 50.0]}}),
                            ["uns['spatial']['lib']['scalefactors'] is a ndarray, not a mapping"]),
    "scalefactor text": (set_spatial({"lib": {"scalefactors": {"spot_diameter_fullres": "big"}}}),
                         ["['scalefactors']['spot_diameter_fullres'] is 'big'", "positive number"]),
    "scalefactor negative": (set_spatial({"lib": {"scalefactors": {"tissue_hires_scalef": -0.1}}}),
                             ["['tissue_hires_scalef'] is -0.1"]),
    "image a path": (set_spatial({"lib": {"images": {"hires": "tissue_hires_image.png"}, "scalefactors": _SCALES}}),
                     ["['images']['hires'] is a str", "image array"]),
    "image 1-D": (set_spatial({"lib": {"images": {"hires": np.zeros(30)}, "scalefactors": _SCALES}}),
                  ["['images']['hires'] is an array of shape (30,)"]),
    "image without scale factor": (set_spatial({"lib": {"images": _IMAGES, "scalefactors": {}}}),
                                   ["['images']['hires'] has no scale factor", "tissue_hires_scalef"]),
    "obs_names twice": (rename("obs", [3, 9]), ["spot 'spot3' is given twice (obs_names[3] and obs_names[9])"]),
    "var_names twice": (rename("var", [2, 7]), ["is given twice (var_names[2] and var_names[7])",
                                                "duplicate_genes: sum"]),
    "var_names nan twice": (rename("var", [2, 7], "nan"),
                            ["gene 'nan' (a missing name written as text?) is given twice"]),
    "var_names empty": (rename("var", [4], " "), ["var_names[4] is ' '", "needs a name"]),
    "sparse X with NaN": (sparse_nan, ["X holds NaN or infinite values"]),
    "normalised X": (lambda a: setattr(a, "X", np.log1p(a.X)), ["X does not hold raw counts"]),
}


@pytest.mark.parametrize("case", list(BAD_ANNDATA))
def test_a_users_anndata_that_cannot_be_decoded_faithfully(st, real_counts, case):
    edit, parts = BAD_ANNDATA[case]
    path = user_anndata(real_counts, st["raw"] / "user.h5ad", edit)
    fails(st, str(path), *parts, counts=None, h5ad=str(path), options={"region_key": "layer"})


def test_a_users_anndata_decoded_faithfully(st, real_counts):
    """Whole-number positions stored as floats or text, a region column with missing values
    (unannotated, not a region 'nan'), a library without images, genes named twice summed."""
    import anndata as ad

    from concept_saliency.data.grid import read_grid

    gene, other = real_counts.columns[2], real_counts.columns[9]
    reference = user_anndata(real_counts, st["raw"] / "reference.h5ad")
    index, _ = read_grid(prepare(st, counts=None, h5ad=str(reference)) / "grid.h5")

    def edit(a):
        a.obs["array_row"] = a.obs["array_row"].astype(float)
        a.obs["array_col"] = a.obs["array_col"].astype(str)
        a.obs["cluster"] = np.where(np.arange(a.n_obs) % 3 == 0, np.nan, a.obs["array_row"] % 2)
        a.uns["spatial"] = {"lib": {"scalefactors": {"spot_diameter_fullres": 50.0}}}
        rename("var", [2, 9])(a)

    path = user_anndata(real_counts, st["raw"] / "user.h5ad", edit)
    st["results"] = st["results"].with_name("user")
    data = prepare(st, counts=None, h5ad=str(path), options={"region_key": "cluster"},
                   normalisation={"method": "scale", "duplicate_genes": "sum"})
    grid, regions = read_grid(data / "grid.h5")
    np.testing.assert_array_equal(grid.row, index.row)
    np.testing.assert_array_equal(grid.col, index.col)
    rows = np.round([float(s.split("x")[1]) for s in real_counts.index]).astype(int)
    expected = {f"spot{k}": "" if k % 3 == 0 else str(r % 2) for k, r in enumerate(rows)}
    assert regions == [expected[s] for s in grid.spots] and "nan" not in regions
    prepared = ad.read_h5ad(data / "spatial.h5ad")
    assert gene in prepared.var_names and other not in prepared.var_names and prepared.n_vars == 59
    real = real_counts.loc[[s for s, name in zip(real_counts.index, (f"spot{k}" for k in range(262)))
                            if name in prepared.obs_names]]
    np.testing.assert_array_equal(np.asarray(prepared[:, gene].layers["counts"]).ravel(), real[gene] + real[other])
    assert prepared.uns["spatial"]["lib"]["scalefactors"]["spot_diameter_fullres"] == 50.0
    assert_no_partial_artifacts(st["results"])


# ------------------------------------------------------------------ filters


def test_min_spots_beyond_the_number_of_spots(st):
    fails(st, str(st["counts"]), "no genes left", "min_spots 300 is more than the 261 spots left",
          normalisation={"method": "scale", "min_spots": 300})


def test_an_anndata_with_no_gene_left_after_filtering(st, real_counts):
    path = user_anndata(real_counts, st["raw"] / "user.h5ad")
    fails(st, str(path), "no genes left", "min_spots", counts=None, h5ad=str(path),
          normalisation={"method": "scale", "min_spots": 1000})


def test_a_constant_gene_scales_to_zero_not_nan(st, real_counts):
    import pandas as pd

    from concept_saliency.data.samples import SampleStore

    df = pd.read_csv(st["counts"], sep="\t", index_col=0)
    df["Flat1"] = 7
    df.to_csv(st["counts"], sep="\t")
    data = prepare(st)
    with SampleStore(str(data / "samples.h5")) as store:
        images = store.read()
        assert np.isfinite(images).all() and images[store.ids.index("Flat1")].max() == 0


# ------------------------------------------------------------------ gene concepts that cannot hold


@pytest.fixture
def gene_latents(st, mob_matrix):
    """Real counts of 30 expressed genes, Penk and Doc2g and 10 genes detected in 5 to 20 spots
    (removed by min_spots 30), prepared with an annotation of the spots by Penk; latents
    written directly: each gene's latent its mean counts over 8 groups of spots."""
    import h5py

    from concept_saliency.encoding import write_latents

    detected = (mob_matrix > 0).sum()
    rare = list(detected[(detected >= 5) & (detected <= 20)].index[:10])
    counts = mob_matrix[list(mob_matrix.sum().sort_values(ascending=False).index[:30]) + ["Penk", "Doc2g"] + rare]
    counts.to_csv(st["counts"], sep="\t")
    penk = counts["Penk"]
    annotation = write_annotation(st, [f"{s}\t{'high' if v > penk.median() else 'low'}"
                                       for s, v in penk.items()])
    data = prepare(st, annotation=str(annotation), normalisation={"method": "scale", "min_spots": 30})
    with h5py.File(data / "samples.h5") as f:
        split = f["split"][()]
        ids = [i.decode() for i in f["ids"][()]]
    assert len(ids) == 32, ids
    z = np.stack([[counts[g].to_numpy()[k::8].mean() for k in range(8)] for g in ids]).astype(np.float32)
    write_latents(data / "latents.h5", z, ids, split)
    return data, ids


def run_concepts(data: Path, spec: dict, explain_ids=()):
    from concept_saliency.stages.concepts import concepts

    out = data / "concepts"
    concepts(latents=str(data / "latents.h5"), samples=str(data / "samples.h5"), concepts=str(out / "c.h5"),
             separation=str(out / "separation.tsv"),
             groups=str(out / "groups.tsv"), spec=spec, top_k=2, explain_ids=list(explain_ids), seed=0,
             anndata=str(data / "spatial.h5ad"))
    return out


def concept_fails(data: Path, spec: dict, *parts, explain_ids=()):
    from concept_saliency.errors import ConfigError

    with user_error(*parts, error=ConfigError) as refusal:
        run_concepts(data=data, spec=spec, explain_ids=explain_ids)
    message = refusal.message
    assert not (data / "concepts").exists() or not any((data / "concepts").iterdir())
    assert_no_partial_artifacts(data / "concepts")
    return message


def test_n_genes_not_below_the_genes_left_after_filtering(gene_latents):
    data, ids = gene_latents
    concept_fails(data, {"seed_genes": {"penk": "Penk"}, "n_genes": 500}, "concept 'penk'",
                  "config key 'concepts.n_genes' is 500", "the data have 32 genes",
                  "removed 10 genes detected in fewer than 30 spots", "set it below 32")
    concept_fails(data, {"seed_genes": {"penk": {"gene": "Penk", "n_genes": len(ids)}}},
                  f"'concepts.seed_genes.penk.n_genes' is {len(ids)}", "AUROC is undefined")
    out = run_concepts(data, {"seed_genes": {"penk": {"gene": "Penk", "n_genes": len(ids) - 1}}})
    import pandas as pd

    assert len(pd.read_csv(out / "groups.tsv", sep="\t")) == len(ids) - 1
    assert np.isfinite(pd.read_csv(out / "separation.tsv", sep="\t")["auroc"]).all()


@pytest.mark.parametrize("spec, explain, parts", [
    ({"seed_genes": {"penk": "PENK"}}, [], ["concept 'penk'", "'PENK' (did you mean 'Penk'?)", "case-sensitive"]),
    ({"gene_sets": {"s": ["Penk", "doc2g"]}}, [], ["concept 's'", "'doc2g' (did you mean 'Doc2g'?)"]),
    ({"gene_sets": {"s": ["Penk"]}}, ["PENK"], ["explain.ids", "did you mean 'Penk'?"]),
    ({"gene_sets": {"s": ["Penk", "Doc2g", "Penk"]}}, [], ["gene 'Penk' is listed twice", "items 1 and 3"]),
])
def test_gene_names_in_concepts_are_case_sensitive_and_listed_once(gene_latents, spec, explain, parts):
    data, _ = gene_latents
    concept_fails(data, spec, *parts, explain_ids=explain)


def test_a_gene_set_of_every_gene(gene_latents):
    data, ids = gene_latents
    concept_fails(data, {"gene_sets": {"all": ids}}, "concept 'all'", f"holds all {len(ids)} genes",
                  "AUROC", "leave some genes out")


def test_fewer_genes_higher_in_a_region_than_n_markers_are_recorded(gene_latents, caplog):
    import logging

    import pandas as pd

    data, ids = gene_latents
    with caplog.at_level(logging.WARNING):
        out = run_concepts(data, {"regions": {"penk_high": "high"}, "n_markers": len(ids) - 1})
    groups = pd.read_csv(out / "groups.tsv", sep="\t")
    separation = pd.read_csv(out / "separation.tsv", sep="\t").set_index("concept")
    n = len(groups)
    assert 0 < n < len(ids) - 1 and (groups["logfoldchange"] > 0).all()
    assert separation.loc["penk_high", "fit_n_genes"] == n
    assert separation.loc["penk_high", "fit_n_markers"] == len(ids) - 1
    assert f"only {n} genes are higher in region 'high'" in caplog.text and "concepts.n_markers" in caplog.text
