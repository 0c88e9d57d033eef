"""Bad inputs of an image folder source (images + attribute table): one line naming the file,
nothing written."""

from __future__ import annotations


import numpy as np
import pytest

from concept_saliency.errors import InputDataError
from concept_saliency.stages.prepare import prepare_images

from .helpers import assert_no_partial_artifacts, expect_user_error


@pytest.fixture
def folder(tmp_path):
    from PIL import Image

    images = tmp_path / "faces"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(images / f"f{i}.png")
    labels = tmp_path / "labels.csv"
    labels.write_text("image,Smiling,Glasses\n" + "".join(f"f{i}.png,{1 if i % 2 else -1},1\n"
                                                          for i in range(6)))
    return {"images": images, "labels": labels, "results": tmp_path / "results"}


def prepare(folder, *parts):
    out = folder["results"] / "faces" / "data" / "samples.h5"
    kw = dict(images=str(folder["images"]), labels=str(folder["labels"]), samples=str(out),
              image_size=16, validation_fraction=0.25, seed=0)
    if not parts:
        return prepare_images(**kw)
    expect_user_error(prepare_images, *parts, error=InputDataError, **kw)
    assert not out.exists()
    assert_no_partial_artifacts(folder["results"])


def test_the_unspoilt_folder_packs(folder):
    prepare(folder)
    assert_no_partial_artifacts(folder["results"])


def test_an_image_that_is_not_one(folder):
    (folder["images"] / "f3.png").write_text("not a PNG")
    prepare(folder, "f3.png", "cannot read the image")


def test_a_truncated_image(folder):
    path = folder["images"] / "f2.png"
    path.write_bytes(path.read_bytes()[:60])
    prepare(folder, "f2.png", "cannot read the image")


def test_a_decompression_bomb(folder, monkeypatch):
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # a 20x20 image is then 2x too large
    prepare(folder, "f0.png", "refused", "decompression bomb")


def test_a_missing_image(folder):
    (folder["images"] / "f4.png").unlink()
    prepare(folder, str(folder["images"]), "f4.png", "missing")


@pytest.mark.parametrize("row, parts", [("f1.png,2,1", ["column 'Smiling'", "'2'", "-1, 0 or 1"]),
                                        ("f1.png,yes,1", ["'yes'"]),
                                        ("f1.png,nan,1", ["'nan'"]), ("f1.png,,1", ["value ''"]),
                                        ("f0.png,1,1", ["'f0.png' appears more than once"])])
def test_bad_label_rows(folder, row, parts):
    lines = folder["labels"].read_text().splitlines()
    lines[2] = row
    folder["labels"].write_text("\n".join(lines) + "\n")
    prepare(folder, str(folder["labels"]), *parts)


def test_a_label_table_without_attributes(folder):
    folder["labels"].write_text("image\nf0.png\n")
    prepare(folder, str(folder["labels"]), "at least one attribute column")
