"""What Snakemake plans and runs after a user's image folder or its concepts change (real runs).

An image rewritten in place reruns preparation and everything after it, with or without
Snakemake's ``.snakemake`` records (the manifest written while the DAG is built carries the
change); choosing other concepts, or editing a region mask given with the images, does not
retrain; a bad attribute name or a missing image stops the run before any job. One tiny
dataset: 24 images of 16x16 with mouth masks, demo-shapes preset, one epoch, one saliency
method.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from workflow_run import copy_workflow, planned_jobs, snakemake

pytestmark = pytest.mark.workflow

EVERYTHING_AFTER_AN_IMAGE = {"prepare_images": 1, "prepare_regions": 1, "train": 1, "plot_loss": 1,
                             "encode": 1, "concepts": 1, "plot_scores": 1, "saliency": 1, "localise": 1,
                             "evaluate": 1, "render": 2, "all": 1}


def image_folder(root: Path) -> Path:
    images = root / "faces"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    (root / "masks" / "mouth").mkdir(parents=True)
    rows = ["image,Smiling,Glasses"]
    for i in range(24):
        pixels = rng.integers(0, 60, (16, 16, 3), dtype=np.uint8)
        pixels[:8, :8, 0] = 250 if i % 2 else 0
        Image.fromarray(pixels).save(images / f"f{i}.png")
        rows.append(f"f{i}.png,{1 if i % 2 else -1},{1 if i % 3 == 0 else -1}")
        mouth = np.zeros((16, 16), np.uint8)
        mouth[:8, :8] = 255
        Image.fromarray(mouth).save(root / "masks" / "mouth" / f"f{i}.png")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return images


def write_config(work: Path, images: Path, attributes="all") -> str:
    config = {
        "saliency": {"methods": {"vanilla_gradient": {}}},
        "evaluation": {"randomisation_samples": 2, "curve_steps": 4},
        "datasets": {"faces": {
            "type": "images",
            "source": {"image_folder": {"images": str(images), "labels": str(images.parent / "labels.csv"),
                                        "masks": str(images.parent / "masks")}},
            "localisation": {"regions": {"Smiling": "mouth"}},
            "image_size": 16, "validation_fraction": 0.25,
            "models": {"m": {"preset": "demo-shapes", "epochs": 1, "batch_size": 8}},
            "concepts": {"attributes": attributes, "num_samples": 4}, "explain": {"top_k": 2}}},
    }
    path = work / "config" / "faces.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def rewrite(path: Path, value: int) -> np.ndarray:
    """Rewrite an image in place, same name and size on disk or not, with a later mtime."""
    pixels = np.full((16, 16, 3), value, dtype=np.uint8)
    before = path.stat().st_mtime_ns
    Image.fromarray(pixels).save(path)
    os.utime(path, ns=(before + 10**9, before + 10**9))
    return pixels


def test_edits_of_images_rerun_what_depends_on_them_and_concept_choices_do_not_retrain(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    images = image_folder(tmp_path)
    config = write_config(work, images)
    snakemake(work, "--cores", "2", "--configfile", config)
    manifest = work / "results" / "faces" / "raw" / "image_manifest.tsv"
    assert manifest.with_name(manifest.name + ".prov.json").is_file()
    stamp = manifest.stat().st_mtime_ns

    # nothing changed: nothing to do, and the manifest keeps its mtime
    assert planned_jobs(work, "--configfile", config) == {}
    assert manifest.stat().st_mtime_ns == stamp
    # a file the table does not name (Finder's .DS_Store) changes nothing
    (images / ".DS_Store").write_bytes(b"\0" * 10)
    assert planned_jobs(work, "--configfile", config) == {}

    # other concepts: new concept vectors and maps, the same model
    jobs = planned_jobs(work, "--configfile", write_config(work, images, ["Smiling"]))
    assert jobs == {"concepts": 1, "plot_scores": 1, "saliency": 1, "localise": 1, "evaluate": 1, "render": 1,
                    "all": 1}, jobs
    config = write_config(work, images, "all")

    # a region mask edited: the regions and the scores, the same model and maps
    mouth = np.zeros((16, 16), np.uint8)
    mouth[8:, 8:] = 255
    Image.fromarray(mouth).save(images.parent / "masks" / "mouth" / "f3.png")
    jobs = planned_jobs(work, "--configfile", config)
    assert jobs == {"prepare_regions": 1, "localise": 1, "evaluate": 1, "all": 1}, jobs

    # an image rewritten in place: preparation and everything after it
    new = rewrite(images / "f3.png", 128)
    assert planned_jobs(work, "--configfile", config) == EVERYTHING_AFTER_AN_IMAGE
    # also without Snakemake's records (mtime only)
    shutil.rmtree(work / ".snakemake")
    assert planned_jobs(work, "--configfile", config) == EVERYTHING_AFTER_AN_IMAGE

    snakemake(work, "--cores", "2", "--configfile", config)
    from concept_saliency.data.samples import SampleStore

    with SampleStore(str(work / "results" / "faces" / "data" / "samples.h5")) as store:
        np.testing.assert_allclose(store.read(np.array([store.ids.index("f3")]))[0], new / 255.0, atol=1e-7)
    assert planned_jobs(work, "--configfile", config) == {}


@pytest.mark.parametrize("spoil, message", [
    (lambda images: _edit_header(images, "Glasses", "a/b"),
     "labels.csv: line 1, column 3 name 'a/b' holds a '/'"),
    (lambda images: _edit_header(images, "Glasses", "Smiling"),
     "labels.csv: line 1: columns 2 and 3 are both named 'Smiling'"),
    (lambda images: (images / "f7.png").unlink(), "1 image(s) named in"),
])
def test_a_bad_table_or_a_missing_image_stops_the_run_before_any_job(tmp_path, spoil, message):
    work = copy_workflow(tmp_path / "wf")
    images = image_folder(tmp_path)
    spoil(images)
    done = snakemake(work, "-n", "--configfile", write_config(work, images), check=False)
    out = done.stdout + done.stderr
    assert done.returncode != 0 and "Traceback" not in out, out[-3000:]
    lines = [line for line in out.splitlines() if message in line]
    assert len(lines) == 1, out[-3000:]
    assert not (work / "results" / "faces" / "data").exists()


def _edit_header(images: Path, old: str, new: str) -> None:
    table = images.parent / "labels.csv"
    head, rest = table.read_text().split("\n", 1)
    table.write_text(head.replace(old, new) + "\n" + rest)
