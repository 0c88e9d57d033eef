"""Bad Spatial Transcriptomics inputs: each stops the prepare stage with one line naming the
file and the line, spot or gene, and leaves no AnnData, grid or sample store behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from concept_saliency.errors import InputDataError
from concept_saliency.stages.prepare import prepare_spatial

from .helpers import assert_no_partial_artifacts, edit_line, expect_user_error

MATRIX = "mob/Rep11_MOB_count_matrix-1.tsv.gz"
# the real alignment of the original release has this shape: scale 0 and 4, shift 6 and 7
ALIGNMENT = "290.0 0.0 0.0 0.0 291.5 0.0 -290.0 -291.0 1.0\n"


@pytest.fixture(scope="module")
def real_counts(tmp_path_factory):
    """The real MOB replicate 11 cut to 262 spots x its 60 most expressed genes."""
    import pandas as pd

    from conftest import shared_data

    path = shared_data() / MATRIX
    if not path.exists():
        pytest.skip(f"{path} not found (set CSM_TEST_DATA)")
    df = pd.read_csv(path, sep="\t", index_col=0)
    return df[df.sum().sort_values(ascending=False).index[:60]]


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
    prepare_spatial(**args)
    return data


def fails(st, *parts, **kw):
    data = st["results"] / "mob" / "data"
    message = expect_user_error(prepare, *parts, error=InputDataError, st=st, **kw)
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
