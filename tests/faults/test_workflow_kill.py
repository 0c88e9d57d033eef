"""kill -9 of the whole ``snakemake`` process group while it packs, encodes and computes
saliency maps; two runs at once. Rerunning (the default profile has ``rerun-incomplete``) must
never take a truncated HDF5 file for a finished one, and must end with every artifact valid
and nothing partial left. The data are 1,000 real CelebA images; the encoder is a small user
encoder (no training), so the run takes seconds."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from helpers import tiny_encoder
from workflow_run import copy_workflow

from helpers import assert_no_partial_artifacts
from .test_workflow_faults import SNAKEMAKE, fast_env, smk

CELEBA = {"images": "img_align_celeba_89x109.zip", "attributes": "list_attr_celeba.txt",
          "landmarks": "list_landmarks_align_celeba_000001-010000.csv"}
LIMIT = 1000
LOCKED = "Directory cannot be locked"


def start(work: Path, target: str) -> subprocess.Popen:
    return subprocess.Popen([*SNAKEMAKE, target, "--cores", "2", "--configfile", "config/faces.yaml"],
                            cwd=work, env=fast_env(TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES=""), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def kill_when(proc: subprocess.Popen, ready, what: str, timeout: float = 180) -> None:
    """``kill -9`` of the run's whole process group (Snakemake and its jobs) once ``ready()``."""
    deadline = time.time() + timeout
    try:
        while not ready():
            if proc.poll() is not None:
                pytest.fail(f"the run ended before {what}:\n{proc.stdout.read()[-3000:]}")
            if time.time() > deadline:
                pytest.fail(f"no {what} within {timeout}s")
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def temporaries(folder: Path, stem: str) -> list[Path]:
    return list(folder.glob(f".{stem}.tmp-*")) if folder.exists() else []


def valid_h5(path: Path, fmt: str, record: bool = True) -> None:
    """A complete HDF5 artifact (format tag, readable) and, unless the job that wrote it was
    killed between the rename and the record, its provenance record."""
    from concept_saliency.artifacts import open_h5, provenance_path

    with open_h5(path, fmt) as f:
        assert len(f.keys()) > 0
    assert provenance_path(path).exists() or not record


@pytest.fixture
def run(tmp_path, data_dir):
    celeba = data_dir / "celeba"
    if not all((celeba / n).exists() for n in CELEBA.values()):
        pytest.skip(f"the CelebA subset is not in {celeba}")
    work = copy_workflow(tmp_path / "wf")
    encoder = tmp_path / "user" / "encoder.keras"
    encoder.parent.mkdir()
    tiny_encoder(shape=(32, 32, 3), latent=3).save(encoder)
    config = {
        "threads": {"crop_pack": 1, "saliency": 1},
        "saliency": {"chunk_size": 64, "methods": {"smoothgrad": {"samples": 400}}},
        "datasets": {"faces": {
            "type": "images",
            "source": {"celeba": {"directory": str(celeba), "files": CELEBA, "limit": LIMIT}},
            "image_size": 32,
            "models": {"mine": {"keras_file": str(encoder)}},
            "concepts": {"attributes": ["Smiling", "Male"], "num_samples": 50},
            "explain": {"top_k": 3},
        }},
    }
    (work / "config" / "faces.yaml").write_text(yaml.safe_dump(config))
    return work


def test_kill_9_during_pack_encode_and_saliency_then_rerun_gives_valid_artifacts(run):
    work = run
    res = work / "results" / "faces"
    data, model = res / "data", res / "mine"
    target = "results/faces/mine/saliency/smoothgrad.h5"

    # 1. killed while the sample store is being written
    kill_when(start(work, target), lambda: temporaries(data, "samples"), "sample store being written")
    assert not (data / "samples.h5").exists()  # only the temporary, never a truncated samples.h5

    # 2. the killed run's lock is still there: a new run is refused and says what to do
    refused = smk(work, target, "--cores", "1", "--configfile", "config/faces.yaml")
    out = refused.stdout + refused.stderr
    assert refused.returncode != 0 and LOCKED in out and "--unlock" in out, out[-2000:]
    assert smk(work, "--unlock", "--configfile", "config/faces.yaml").returncode == 0

    # 3. two runs at once: the second is refused by the lock while the first goes on; then the
    #    first is killed while it encodes
    first = start(work, target)
    encode_log = model / "logs" / "encode.log"
    deadline = time.time() + 180
    while not encode_log.exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    second = smk(work, target, "--cores", "1", "--configfile", "config/faces.yaml")
    out = second.stdout + second.stderr
    assert second.returncode != 0 and LOCKED in out, out[-2000:]
    assert first.poll() is None, "the first run ended while the second was refused"
    kill_when(first, lambda: temporaries(model, "latents") or (model / "latents.h5").exists(),
              "encoding")
    valid_h5(data / "samples.h5", "csm.samples")  # packed by the rerun, complete
    if (model / "latents.h5").exists():  # killed after the rename: complete, perhaps no record
        valid_h5(model / "latents.h5", "csm.latents", record=False)  # (Snakemake reruns the job)

    # 4. killed while the saliency maps are being written
    assert smk(work, "--unlock", "--configfile", "config/faces.yaml").returncode == 0
    kill_when(start(work, target), lambda: temporaries(model / "saliency", "smoothgrad"),
              "saliency maps being written")
    assert not (model / "saliency" / "smoothgrad.h5").exists()

    # 5. the rerun finishes; every artifact is complete and versioned, nothing partial is left
    assert smk(work, "--unlock", "--configfile", "config/faces.yaml").returncode == 0
    done = smk(work, target, "--cores", "2", "--configfile", "config/faces.yaml")
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    valid_h5(data / "samples.h5", "csm.samples")
    valid_h5(model / "latents.h5", "csm.latents")
    valid_h5(model / "concepts" / "concepts.h5", "csm.concepts")
    valid_h5(model / "saliency" / "smoothgrad.h5", "csm.saliency")
    from concept_saliency.data.samples import SampleStore

    with SampleStore(str(data / "samples.h5")) as store:
        assert len(store) == LIMIT
    assert_no_partial_artifacts(work / "results")
    assert "crop_pack: start" in (res / "logs" / "crop_pack.log").read_text()
    again = smk(work, target, "-n", "--cores", "1", "--configfile", "config/faces.yaml")
    assert "Nothing to be done" in again.stdout + again.stderr
