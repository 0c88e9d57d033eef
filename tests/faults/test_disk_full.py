"""A disk that fills up while an artifact is written: one line naming the file, the free space
and what is needed; nothing partial left (a download's .part stays, to be resumed).

The full disk is real: a small tmpfs mounted for the test (needs root, as the SLURM test does;
skipped with the reason elsewhere).
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest

from concept_saliency.errors import DiskFullError

from helpers import assert_no_partial_artifacts, user_error

pytestmark = pytest.mark.faults


@pytest.fixture
def small_disk(tmp_path):
    """A 96 kB filesystem at tmp_path/disk (a real tmpfs)."""
    where = tmp_path / "disk"
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", f"csm-{uuid.uuid4().hex[:8]}",
                           str(where)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


PREPARE = """
import sys
from concept_saliency.stages import run_job
images, labels, samples, log = sys.argv[1:]
run_job("prepare_images", log_file=log, inputs={"images": images, "labels": labels},
        outputs={"samples": samples}, params={"image_size": 32, "validation_fraction": 0.25, "seed": 0})
"""


def test_a_sample_store_too_big_for_the_disk(small_disk, tmp_path):
    """An HDF5 write that fails for space leaves HDF5 unable to shut down cleanly, so the stage's
    process reports the one line and leaves at once: exit status 1, no crash dump."""
    import os
    import sys

    from PIL import Image

    from helpers import REPO

    images = tmp_path / "faces"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(64):  # noise does not compress: 64 x 32 x 32 x 3 = 196.6 kB
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(images / f"f{i}.png")
    (tmp_path / "labels.csv").write_text("image,a\n" + "".join(f"f{i}.png,{i % 2}\n" for i in range(64)))
    out = small_disk / "results" / "toy" / "data" / "samples.h5"
    log = tmp_path / "prepare.log"
    done = subprocess.run([sys.executable, "-c", PREPARE, str(images), str(tmp_path / "labels.csv"),
                           str(out), str(log)], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(REPO / "src")))
    assert done.returncode == 1, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, done.stderr[-3000:]
    for part in (str(out), "the disk is full", "free in", "about 196.6 kB is needed", "Nothing was kept"):
        assert part in errors[0], errors[0]
    assert "Traceback" not in done.stderr and "Fatal Python error" not in done.stderr, done.stderr[-3000:]
    assert errors[0].split(" ERROR ", 1)[1] in log.read_text()
    assert not list(out.parent.iterdir())
    assert_no_partial_artifacts(small_disk / "results")


def test_a_keras_model_that_does_not_fit(small_disk, tmp_path):
    """import_encoder writes the user's latent model (a .keras zip) under results/."""
    from concept_saliency.artifacts import Provenance
    from concept_saliency.data.samples import assign_split, write_samples
    from concept_saliency.stages.import_encoder import import_encoder

    from helpers import tiny_encoder

    samples = tmp_path / "samples.h5"
    write_samples(samples, np.random.default_rng(0).uniform(0, 1, (8, 8, 8, 2)).astype(np.float32),
                  [f"s{i}" for i in range(8)], assign_split(8, 0.25, 0))
    Provenance("test").write(samples, "csm.samples")
    mine = tmp_path / "mine.keras"
    model = tiny_encoder(latent=3)
    model.save(mine)
    (small_disk / "filler").write_bytes(b"\0" * (96_000 - 8192))  # leave less than the model
    out = small_disk / "results" / "toy" / "mine" / "model" / "imported.keras"
    with user_error(str(out), "the disk is full", "needed", error=DiskFullError):
        import_encoder(samples=str(samples), keras_file=str(mine), encoder=str(out))
    assert not out.exists()
    assert_no_partial_artifacts(small_disk / "results")


def test_a_download_that_fills_the_disk_keeps_its_part_to_resume(small_disk, tmp_path):
    from http_server import LoopbackServer

    from concept_saliency.data.download import download

    root = tmp_path / "www"
    root.mkdir()
    payload = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    (root / "counts.tsv.gz").write_bytes(payload)
    dest = small_disk / "results" / "mob" / "raw" / "download" / "counts.tsv.gz"
    with LoopbackServer(root) as server:
        with user_error(
                str(dest) + ".part", "the disk is full", "more is needed", "resumes", error=DiskFullError) as refusal:
            download(source=f"{server.url}/counts.tsv.gz", dest=dest, backoff=0.01, chunk_size=16384)
        message = refusal.message
        assert len([r for r in server.requests]) == 1  # no retry: retrying cannot help
    assert "kB more" in message
    assert not dest.exists()
    part = dest.with_name(dest.name + ".part")
    assert 0 < part.stat().st_size < len(payload)
    assert payload.startswith(part.read_bytes())
    assert_no_partial_artifacts(small_disk / "results", allow_part=True)


def test_a_local_copy_that_does_not_fit(small_disk, tmp_path):
    from concept_saliency.data.download import download

    src = tmp_path / "counts.tsv.gz"
    src.write_bytes(b"x" * 200_000)
    dest = small_disk / "results" / "mob" / "raw" / "download" / "counts.tsv.gz"
    with user_error(str(dest), "the disk is full", "about 200.0 kB is needed", error=DiskFullError):
        download(source=str(src), dest=dest)
    assert not list(dest.parent.iterdir())


def test_a_full_disk_stops_a_snakemake_job_with_one_line(small_disk, tmp_path):
    """The demo's first job writes its images to results/ on the full disk."""
    import yaml

    from workflow_run import copy_workflow, fast_env

    work = copy_workflow(tmp_path / "wf")
    config = yaml.safe_load((work / "config" / "config.yaml").read_text())
    config["results"] = str(small_disk / "results")
    config["datasets"] = {"shapes": config["datasets"]["shapes"]}
    (work / "config" / "full.yaml").write_text(yaml.safe_dump(config))
    done = subprocess.run(
        ["snakemake", "--cores", "1", "--configfile", "config/full.yaml", "--until", "generate_shapes"],
        cwd=work, text=True, capture_output=True, timeout=300, env=fast_env(),
        executable=shutil.which("snakemake", path=str(Path(__import__("sys").executable).parent)))
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert "the disk is full" in out and "raw/images" in out, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    assert_no_partial_artifacts(small_disk / "results")
