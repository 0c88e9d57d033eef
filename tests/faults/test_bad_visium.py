"""Bad Space Ranger outputs: each stops the prepare stage with one line naming the file (and the
line, spot, key or feature), and leaves no AnnData, grid or sample store behind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from concept_saliency.errors import InputDataError
from concept_saliency.sources import source_files

from helpers import assert_no_partial_artifacts, edit_line, run_stage, user_error
from spaceranger import planted_slide, write_spaceranger


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    slide = planted_slide()
    return slide, write_spaceranger(tmp_path_factory.mktemp("pristine") / "outs", slide, raw=True)


@pytest.fixture
def outs(tmp_path, pristine):
    """A fresh copy of the Space Ranger 2 folder for each test to spoil."""
    return Path(shutil.copytree(pristine[1], tmp_path / "outs"))


def prepare(outs: Path, results: Path, options=None, **kw) -> Path:
    data = results / "v" / "data"
    inputs = {role: f.path for role, f in source_files(
        "v", {"source": {"visium": {"path": str(outs), **kw.pop("source", {})}}}, "results").items()}
    args = dict(samples=str(data / "samples.h5"), anndata=str(data / "spatial.h5ad"), grid=str(data / "grid.h5"),
                normalisation={"method": "scale"}, grid_size="auto", validation_fraction=0.1, seed=0,
                presets=["paper-mob"], options=options or {"in_tissue_only": True, "library_id": None},
                library_id="v") | inputs | kw
    run_stage("prepare_spatial", ("samples", "anndata", "grid"), **args)
    return data


def fails(outs: Path, *parts, **kw) -> str:
    results = outs.parent / "results"
    with user_error(*parts, error=InputDataError) as refusal:
        prepare(outs, results, **kw)
    data = results / "v" / "data"
    assert not data.exists() or not any(data.iterdir()), list(data.iterdir())
    assert_no_partial_artifacts(results)
    return refusal.message


def positions_file(outs: Path) -> Path:
    return outs / "spatial" / "tissue_positions.csv"


def test_the_unspoilt_folder_prepares(outs):
    data = prepare(outs, outs.parent / "results")
    assert (data / "samples.h5").exists()
    assert_no_partial_artifacts(outs.parent / "results")


# ------------------------------------------------------------------ the matrix


def test_a_matrix_that_is_not_hdf5(outs):
    (outs / "filtered_feature_bc_matrix.h5").write_text("barcode,gene,count\n")
    fails(outs, "filtered_feature_bc_matrix.h5", "not an HDF5 file", "10x HDF5")


def test_an_hdf5_file_that_is_not_a_10x_matrix(outs):
    with h5py.File(outs / "filtered_feature_bc_matrix.h5", "w") as f:
        f.create_dataset("X", data=np.zeros((3, 3)))
    fails(outs, "filtered_feature_bc_matrix.h5", "has no group 'matrix'", "not a 10x feature-barcode matrix")


@pytest.mark.parametrize("part", ["features/name", "indptr", "barcodes"])
def test_a_10x_matrix_missing_a_part(outs, part):
    with h5py.File(outs / "filtered_feature_bc_matrix.h5", "a") as f:
        del f[f"matrix/{part}"]
    fails(outs, "filtered_feature_bc_matrix.h5", f"has no matrix/{part}")


@pytest.mark.parametrize("name, value, what", [
    ("shape", np.array([60, 999], np.int32), "matrix/shape is [60, 999], not [60 features, 187 barcodes]"),
    ("indptr", np.arange(10), "matrix/indptr has 10 entries for 187 barcodes"),
    ("data", np.ones(5, np.int32), "matrix/data has 5 values but matrix/indices"),
])
def test_a_truncated_or_inconsistent_matrix(outs, name, value, what):
    with h5py.File(outs / "filtered_feature_bc_matrix.h5", "a") as f:
        del f[f"matrix/{name}"]
        f["matrix"].create_dataset(name, data=value)
    fails(outs, "filtered_feature_bc_matrix.h5", what, "inconsistent")


def test_a_matrix_of_negative_or_fractional_values(outs):
    path = outs / "filtered_feature_bc_matrix.h5"
    with h5py.File(path, "a") as f:
        data = f["matrix/data"][()].astype(np.float32)
        del f["matrix/data"]
        f["matrix"].create_dataset("data", data=data * 0.5)
    fails(outs, str(path), "not whole numbers", "raw counts")
    with h5py.File(path, "a") as f:
        f["matrix/data"][3] = -2
    fails(outs, str(path), "negative values", "raw counts")


def test_a_matrix_without_gene_expression_features(outs):
    with h5py.File(outs / "filtered_feature_bc_matrix.h5", "a") as f:
        f["matrix/features/feature_type"][...] = b"Antibody Capture"
    fails(outs, "filtered_feature_bc_matrix.h5", "no 'Gene Expression' features")


def test_a_barcode_given_twice_in_the_matrix(outs):
    with h5py.File(outs / "filtered_feature_bc_matrix.h5", "a") as f:
        codes = f["matrix/barcodes"][()]
        codes[5] = codes[2]
        f["matrix/barcodes"][...] = codes
    fails(outs, "filtered_feature_bc_matrix.h5", f"barcode '{codes[2].decode()}' is given twice")


def test_gene_symbols_given_twice_refused_when_asked(outs, pristine):
    slide = pristine[0]
    fails(outs, "filtered_feature_bc_matrix.h5", f"gene 'DUP' is given twice (features {slide.gene_ids[3]} "
                                                 f"and {slide.gene_ids[4]})", "duplicate_genes: sum",
          normalisation={"method": "scale", "duplicate_genes": "refuse"})


# ------------------------------------------------------------------ the positions


@pytest.mark.parametrize("edit, parts", [
    (lambda t: t.replace("pxl_row_in_fullres,pxl_col_in_fullres", "pxl_row,pxl_col", 1),
     ["line 1 names the columns barcode, in_tissue, array_row, array_col, pxl_row, pxl_col",
      "missing: pxl_row_in_fullres, pxl_col_in_fullres"]),
    (lambda t: "\n".join(",".join(line.split(",")[:5]) for line in t.splitlines()[1:]) + "\n",
     ["5 columns", "barcode, in_tissue, array_row, array_col, pxl_row_in_fullres, pxl_col_in_fullres"]),
    (lambda t: "", ["the positions file is empty"]),
    (lambda t: "\n".join(line + (",1" if i == 6 else "") for i, line in enumerate(t.splitlines())) + "\n",
     ["cannot read the positions", "Expected 6 fields in line 7, saw 7"]),
    (lambda t: t.splitlines()[0] + "\n", ["no spots, only a header line"]),
])
def test_positions_with_the_wrong_columns(outs, edit, parts):
    path = positions_file(outs)
    path.write_text(edit(path.read_text()))
    fails(outs, str(path), *parts)


@pytest.mark.parametrize("variant", ["byte-order mark", "windows line ends", "spaces after commas",
                                     "columns reordered"])
def test_harmless_variants_of_the_positions_give_the_same_anndata(outs, variant):
    from concept_saliency.data.spatial import read_anndata

    reference = read_anndata(prepare(outs, outs.parent / "reference") / "spatial.h5ad")
    path = positions_file(outs)
    text = path.read_text()
    if variant == "byte-order mark":
        path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    elif variant == "windows line ends":
        path.write_bytes(text.replace("\n", "\r\n").encode())
    elif variant == "spaces after commas":
        path.write_text(text.replace(",", ", "))
    else:  # the pixel columns first, by the header's names
        path.write_text("".join(",".join([*f[4:], *f[:4]]) + "\n" for f in
                                (line.split(",") for line in text.splitlines())))
    adata = read_anndata(prepare(outs, outs.parent / "results") / "spatial.h5ad")
    np.testing.assert_array_equal(adata.obsm["spatial"], reference.obsm["spatial"])
    np.testing.assert_array_equal(adata.obs.to_numpy(), reference.obs.to_numpy())
    np.testing.assert_array_equal(adata.X, reference.X)


@pytest.mark.parametrize("column, value, want", [
    (2, "x", "array_row is 'x', not a whole number"), (3, "7.5", "array_col is '7.5', not a whole number"),
    (1, "2", "in_tissue is '2', not 0 or 1"), (4, "", "pxl_row_in_fullres is '', not a finite number"),
    (5, "nan", "pxl_col_in_fullres is 'nan', not a finite number"),
])
def test_a_position_that_is_not_a_number(outs, column, value, want):
    path = positions_file(outs)
    barcode = path.read_text().splitlines()[4].split(",")[0]
    edit_line(path, 5, lambda line: ",".join(value if i == column else v for i, v in enumerate(line.split(","))))
    fails(outs, str(path), f"line 5, spot '{barcode}': {want}")


def test_a_barcode_of_the_matrix_missing_from_the_positions(outs):
    path = positions_file(outs)
    lines = path.read_text().splitlines()
    gone = lines[7].split(",")[0]
    path.write_text("\n".join(lines[:7] + lines[8:]) + "\n")
    fails(outs, str(path), "has no line for 1 of the 187 barcodes", f"'{gone}'", "one Space Ranger run")


def test_a_spot_given_twice_in_the_positions(outs):
    path = positions_file(outs)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines + [lines[3]]) + "\n")
    fails(outs, str(path), f"spot '{lines[3].split(',')[0]}' is given twice (lines 4 and {len(lines) + 1})")


def test_no_spot_under_the_tissue(outs):
    path = positions_file(outs)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0]] + [",".join(v if i != 1 else "0" for i, v in enumerate(line.split(",")))
                                            for line in lines[1:]]) + "\n")
    fails(outs, str(path), "none of the 187 spots", "is under the tissue", "in_tissue_only: false")


# ------------------------------------------------------------------ scale factors, images


@pytest.mark.parametrize("text, parts", [
    ("{tissue_hires_scalef: 0.5", ["not JSON"]),
    ("[0.5, 0.15]", ["holds a JSON list, not an object"]),
    ('{"tissue_hires_scalef": 0.5, "tissue_lowres_scalef": 0.15}', ["'spot_diameter_fullres' is missing"]),
    ('{"tissue_hires_scalef": -0.5, "tissue_lowres_scalef": 0.15, "spot_diameter_fullres": 110}',
     ["'tissue_hires_scalef' is -0.5", "positive number"]),
    ('{"tissue_hires_scalef": "0.5", "tissue_lowres_scalef": 0.15, "spot_diameter_fullres": 110}',
     ["'tissue_hires_scalef' is '0.5'"]),
])
def test_bad_scale_factors(outs, text, parts):
    path = outs / "spatial" / "scalefactors_json.json"
    path.write_text(text)
    fails(outs, str(path), *parts)


def test_scale_factors_of_another_run_put_the_spots_off_the_image(outs):
    path = outs / "spatial" / "scalefactors_json.json"
    factors = json.loads(path.read_text())
    path.write_text(json.dumps(factors | {"tissue_hires_scalef": 5.0}))
    fails(outs, "tissue_hires_image.png", "one Space Ranger run",
          "none of the spots lies on this 2000x1500 image at tissue_hires_scalef 5")


def test_an_image_that_is_not_an_image(outs):
    path = outs / "spatial" / "tissue_lowres_image.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    fails(outs, str(path), "cannot read the image")


# ------------------------------------------------------------------ the annotation


def test_an_annotation_of_other_barcodes(outs, tmp_path):
    path = tmp_path / "clusters.csv"
    path.write_text("Barcode,Cluster\nTTTTTTTTTTTTTTTT-2,1\n")
    fails(outs, str(path), "none of its 1 spots", "'TTTTTTTTTTTTTTTT-2'", source={"annotation": str(path)})
