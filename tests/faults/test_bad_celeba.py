"""Bad CelebA files: each stops crop_pack with one line naming the file (and the line, the
column or the image) and what to do, and leaves no sample store, report or temporary file."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from concept_saliency.errors import InputDataError
from concept_saliency.stages.crop_pack import crop_pack

from helpers import assert_no_partial_artifacts, edit_line, run_stage, user_error

N = 12


@pytest.fixture
def source(tmp_path, data_dir):
    """12 real aligned images (178x218) in a zip, the official attribute table (first 12
    rows, whitespace format) and landmark CSV (Kaggle form): a valid source to spoil."""
    celeba = data_dir / "celeba"
    ids = [f"{i:06d}" for i in range(1, N + 1)]
    with zipfile.ZipFile(celeba / "img_align_celeba_178x218.zip") as zf:
        images = {i: zf.read(f"img_align_celeba/{i}.jpg") for i in ids}
    raw = tmp_path / "raw"
    raw.mkdir()
    official = (celeba / "list_attr_celeba.txt").read_text().splitlines()
    (raw / "list_attr_celeba.txt").write_text("\n".join([str(N), *official[1:N + 2]]) + "\n")
    land = (celeba / "list_landmarks_align_celeba_000001-010000.csv").read_text().splitlines()
    (raw / "landmarks.csv").write_text("\n".join(land[:N + 1]) + "\n")
    return {"raw": raw, "images": images, "ids": ids, "results": tmp_path / "results"}


def write_zip(path: Path, images: dict[str, bytes], extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for sid, data in images.items():
            zf.writestr(f"img_align_celeba/{sid}.jpg", data)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return path


def run(source, *parts, images=None, attributes=None, landmarks=None, **kw):
    raw, res = source["raw"], source["results"] / "faces" / "data"
    images = images or write_zip(raw / "img_align_celeba.zip", source["images"])
    args = dict(images=str(images), attributes=str(attributes or raw / "list_attr_celeba.txt"),
                landmarks=str(landmarks or raw / "landmarks.csv"), samples=str(res / "samples.h5"),
                report=str(res / "crop_pack_report.txt"), image_size=32, validation_fraction=0.25,
                seed=0) | kw
    with user_error(*parts, error=InputDataError) as refusal:
        crop_pack(**args)
    message = refusal.message
    assert not (res / "samples.h5").exists() and not (res / "crop_pack_report.txt").exists()
    assert_no_partial_artifacts(source["results"])
    return message


def test_the_unspoilt_source_packs(source):
    res = source["results"] / "faces" / "data"
    write_zip(source["raw"] / "img_align_celeba.zip", source["images"])
    run_stage("crop_pack", ("samples", "report"), images=str(source["raw"] / "img_align_celeba.zip"),
              attributes=str(source["raw"] / "list_attr_celeba.txt"),
              landmarks=str(source["raw"] / "landmarks.csv"), samples=str(res / "samples.h5"),
              report=str(res / "crop_pack_report.txt"), image_size=32, validation_fraction=0.25,
              seed=0)
    assert_no_partial_artifacts(source["results"])


def test_a_zip_that_is_not_one(source):
    fake = source["raw"] / "img_align_celeba.zip"
    fake.write_text("<html>Quota exceeded</html>")  # what a failed Drive download gives
    run(source, str(fake), "not a readable zip", "give img_align_celeba.zip", images=fake)


def test_a_truncated_zip(source):
    path = write_zip(source["raw"] / "img_align_celeba.zip", source["images"])
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    run(source, str(path), "not a readable zip", images=path)


def test_a_truncated_jpeg(source):
    images = dict(source["images"])
    images["000005"] = images["000005"][: len(images["000005"]) // 2]
    path = write_zip(source["raw"] / "img_align_celeba.zip", images)
    run(source, str(path), "too many bad images", "1 unreadable", "000005", "max_bad_fraction",
        images=path)


def test_a_file_that_is_not_an_image(source):
    images = dict(source["images"])
    images["000007"] = b"#!/bin/sh\necho this is not a JPEG\n"
    path = write_zip(source["raw"] / "img_align_celeba.zip", images)
    run(source, str(path), "000007", "unreadable", images=path)


def test_a_bad_image_within_max_bad_fraction_is_left_out_and_reported(source):
    images = dict(source["images"])
    images["000007"] = b"GIF89a not really"
    path = write_zip(source["raw"] / "img_align_celeba.zip", images)
    res = source["results"] / "faces" / "data"
    run_stage("crop_pack", ("samples", "report"), images=str(path),
              attributes=str(source["raw"] / "list_attr_celeba.txt"),
              landmarks=str(source["raw"] / "landmarks.csv"), samples=str(res / "samples.h5"),
              report=str(res / "crop_pack_report.txt"), image_size=32, validation_fraction=0.25,
              seed=0, max_bad_fraction=0.1)
    assert "000007\tunreadable" in (res / "crop_pack_report.txt").read_text()
    assert_no_partial_artifacts(source["results"])


def test_a_landmark_table_with_a_missing_column(source):
    path = source["raw"] / "landmarks.csv"
    lines = [",".join(line.split(",")[:-1]) for line in path.read_text().splitlines()]
    path.write_text("\n".join(lines) + "\n")
    run(source, str(path), "rightmouth_y missing", "landmark columns")


def test_landmark_coordinates_outside_the_image(source):
    path = edit_line(source["raw"] / "landmarks.csv", 4,
                     lambda line: ",".join(line.split(",")[:5] + ["900"] + line.split(",")[6:]))
    run(source, str(path), "line 4", "column 'nose_x'", "900", "outside the 178x218")


def test_negative_landmark_coordinates(source):
    path = edit_line(source["raw"] / "landmarks.csv", 2,
                     lambda line: ",".join([line.split(",")[0], "-70", *line.split(",")[2:]]))
    run(source, str(path), "line 2", "lefteye_x", "-70")


def test_an_attribute_table_whose_count_line_disagrees_with_its_rows(source):
    path = edit_line(source["raw"] / "list_attr_celeba.txt", 1, lambda line: "202599")
    run(source, str(path), "line 1 announces 202599 images", f"{N} rows", "download it again")


def test_an_attribute_table_without_its_count_line(source):
    path = source["raw"] / "list_attr_celeba.txt"
    path.write_text("\n".join(path.read_text().splitlines()[1:]) + "\n")
    run(source, str(path), "line 1 should be the number of images")


def test_duplicate_image_ids(source):
    path = source["raw"] / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    lines[5] = lines[4]
    lines[0] = str(N)
    path.write_text("\n".join(lines) + "\n")
    run(source, str(path), "000003.jpg' appears twice", "lines 5 and 6", "one row per image")


def test_duplicate_landmark_rows(source):
    path = source["raw"] / "landmarks.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines + [lines[3]]) + "\n")
    run(source, str(path), "000003.jpg' appears twice", "lines 4 and 14")


@pytest.mark.parametrize("value", ["2", "x", "0.5", "nan", "inf"])
def test_attribute_values_other_than_minus_one_and_one(source, value):
    path = edit_line(source["raw"] / "list_attr_celeba.txt", 7,
                     lambda line: " ".join(line.split()[:3] + [value] + line.split()[4:]))
    run(source, str(path), "line 7", "Attractive")


def test_an_attribute_table_that_is_binary(source):
    path = source["raw"] / "list_attr_celeba.txt"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    run(source, str(path), "attribute")


def test_nan_and_inf_landmarks(source):
    for bad in ("nan", "inf"):
        path = edit_line(source["raw"] / "landmarks.csv", 3,
                         lambda line: ",".join([*line.split(",")[:2], bad, *line.split(",")[3:]]))
        run(source, str(path), "line 3", "lefteye_y", "not an integer")
