"""Interruptions: kill -9 of training mid-epoch resumes from the last checkpoint; a NaN loss
stops training and keeps the last good checkpoint; stale temporaries of killed writers go.

(Downloads interrupted mid-transfer resume with a Range request: tests/test_download.py,
``test_a_dropped_connection_is_resumed_with_a_range_request`` and
``test_a_partial_file_left_by_a_killed_process_is_resumed``.)
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from concept_saliency.errors import UserError

from helpers import InterruptAfter, assert_no_partial_artifacts, run_stage, user_error

REPO = Path(__file__).resolve().parents[2]
EPOCHS = 4

TRAIN = """
import sys
from concept_saliency.stages import run_job
base = sys.argv[1]
run_job("train", log_file=base + "/logs/train.log", threads=1, inputs={"samples": sys.argv[2]},
        outputs={"vae": base + "/model/vae.keras", "encoder": base + "/model/encoder.keras",
                 "history": base + "/model/history.csv"},
        params={"preset": "demo-shapes", "epochs": int(sys.argv[3]), "batch_size": 16, "seed": 0,
                "checkpoint_dir": base + "/model/checkpoint"})
"""


@pytest.fixture
def shapes(tmp_path):
    """A sample store of 320 synthetic 32x32 scenes (a fraction of a second per epoch)."""
    from concept_saliency.artifacts import Provenance
    from concept_saliency.data.samples import assign_split, write_samples
    from concept_saliency.data.synthetic import make_shapes

    data = make_shapes(320, size=32, seed=0)
    path = tmp_path / "results" / "shapes" / "data" / "samples.h5"
    write_samples(path, data.images, data.ids, assign_split(320, 0.2, 0), data.labels, data.names)
    Provenance("test").write(path, "csm.samples")
    return path


def start_training(base: Path, samples: Path, epochs: int = EPOCHS) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), PYTHONUNBUFFERED="1",
               TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    return subprocess.Popen([sys.executable, "-c", TRAIN, str(base), str(samples), str(epochs)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def trained_epochs(log: str) -> list[int]:
    return [int(n) for n in re.findall(r"epoch (\d+)/\d+ ", log)]


def kill_mid_training(base: Path, samples: Path) -> tuple[str, int]:
    """Start training, kill -9 it in the epoch after its second checkpoint; (log, epochs done)."""
    state = base / "model" / "checkpoint" / "state.json"
    proc = start_training(base, samples)
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            if state.exists() and json.loads(state.read_text())["epoch"] >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"training ended before it could be killed:\n{proc.stdout.read()}"
        time.sleep(0.3)  # into the next epoch
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return (base / "logs" / "train.log").read_text(), json.loads(state.read_text())["epoch"]


@pytest.mark.parametrize("change", ["images rewritten, same ids", "a pixel changed"])
def test_a_checkpoint_made_on_other_data_is_not_resumed(shapes, tmp_path, change):
    """Interrupt training, replace the data (same number, shape and ids), rerun: training starts
    over instead of resuming a model of the old data."""
    from concept_saliency.artifacts import Provenance
    from concept_saliency.data.samples import SampleStore, write_samples
    from concept_saliency.data.synthetic import make_shapes

    base = tmp_path / "results" / "shapes" / "demo"
    first_log, done = kill_mid_training(base, shapes)
    assert 2 <= done < EPOCHS
    with SampleStore(str(shapes)) as store:
        x, ids, split = store.read(), list(store.ids), store.split.copy()
        labels, names = store.labels, store.label_names
    if change == "a pixel changed":
        x[7, 3, 3, 0] = 1.0 - x[7, 3, 3, 0]
    else:
        x = make_shapes(320, size=32, seed=1).images.astype(np.float32) / 255
    write_samples(shapes, np.round(x * 255).astype(np.uint8), ids, split, labels, names)
    Provenance("test").write(shapes, "csm.samples")

    proc = start_training(base, shapes)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    second_log = (base / "logs" / "train.log").read_text()[len(first_log):]
    assert "resuming from the checkpoint" not in second_log
    assert "made with other data or settings" in second_log
    assert trained_epochs(second_log) == list(range(1, EPOCHS + 1))


def test_kill_9_mid_epoch_then_rerun_resumes_without_repeating_epochs(shapes, tmp_path):
    base = tmp_path / "results" / "shapes" / "demo"
    state = base / "model" / "checkpoint" / "state.json"
    proc = start_training(base, shapes)
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            if state.exists() and json.loads(state.read_text())["epoch"] >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"training ended before it could be killed:\n{proc.stdout.read()}"
        time.sleep(0.3)  # into the next epoch
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    first_log = (base / "logs" / "train.log").read_text()
    done = json.loads(state.read_text())["epoch"]
    assert 2 <= done < EPOCHS and trained_epochs(first_log) == list(range(1, done + 1))
    assert not (base / "model" / "encoder.keras").exists()  # no final model from a killed run

    proc = start_training(base, shapes)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    second_log = (base / "logs" / "train.log").read_text()[len(first_log):]
    assert f"resuming from the checkpoint of epoch {done}" in second_log
    assert trained_epochs(second_log) == list(range(done + 1, EPOCHS + 1))  # no epoch repeated
    history = (base / "model" / "history.csv").read_text().splitlines()
    assert [int(line.split(",")[0]) for line in history[1:]] == list(range(1, EPOCHS + 1))
    assert not (base / "model" / "checkpoint").exists()  # cleared once the model is written

    # the final model loads (safe mode) and encodes
    from concept_saliency.encoding import read_latents

    run_stage("encode", ("latents",), samples=str(shapes), encoder=str(base / "model" / "encoder.keras"),
              latents=str(base / "latents.h5"))
    z = read_latents(base / "latents.h5").z
    assert z.shape == (320, 16) and np.isfinite(z).all() and z.std() > 0
    assert_no_partial_artifacts(tmp_path / "results")


def test_a_nan_loss_stops_training_clearly_and_keeps_the_last_good_checkpoint(shapes, tmp_path,
                                                                               monkeypatch):
    """Two good epochs, then the optimiser blows up (its learning rate raised to 1e12 in the
    resumed run): the run stops at epoch 3 with one line, writes no model, and epoch 2's
    checkpoint still loads."""
    import concept_saliency.training as training
    from concept_saliency.model import load_model
    from concept_saliency.presets import get_preset
    from concept_saliency.stages.train import train
    from concept_saliency.training import TrainingDiverged, train_vae

    base = tmp_path / "results" / "shapes" / "demo"
    ckpt = base / "model" / "checkpoint"
    kwargs = dict(samples=str(shapes), vae=str(base / "model" / "vae.keras"),
                  encoder=str(base / "model" / "encoder.keras"),
                  history=str(base / "model" / "history.csv"),
                  preset="demo-shapes", batch_size=64, seed=0, checkpoint_dir=str(ckpt))
    with pytest.raises(KeyboardInterrupt):  # an interruption after epoch 2's checkpoint
        train_vae(shapes, get_preset("demo-shapes"), epochs=4, batch_size=64, seed=0,
                  checkpoint_dir=ckpt, callbacks=[InterruptAfter(2)])
    good = (ckpt / "last.keras").read_bytes()

    def load_and_blow_up(*args, **kw):
        vae = load_model(*args, **kw)
        vae.optimizer.learning_rate.assign(1e12)
        return vae

    monkeypatch.setattr(training, "load_model", load_and_blow_up)
    with user_error(
            "diverged at epoch 3", str(ckpt), "last good checkpoint", "learning_rate", error=TrainingDiverged) as refusal:
        train(epochs=4, **kwargs)
    message = refusal.message
    assert isinstance(TrainingDiverged(message), UserError)
    assert json.loads((ckpt / "state.json").read_text())["epoch"] == 2
    assert (ckpt / "last.keras").read_bytes() == good
    vae = load_model(ckpt / "last.keras", "checkpoint")
    assert all(np.isfinite(w).all() for w in vae.get_weights())
    for name in ("vae.keras", "encoder.keras", "history.csv"):
        assert not (base / "model" / name).exists(), name
    assert_no_partial_artifacts(tmp_path / "results")


def test_temporaries_of_a_killed_writer_are_removed_by_the_next_write(tmp_path):
    from concept_saliency.artifacts import atomic_path

    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f".latents.tmp-{dead.pid}.h5"
    stale.write_bytes(b"\x89HDF half written")
    other = tmp_path / f".latents.tmp-{os.getpid() + 10**7}.h5x"  # not the same artifact's name
    other.write_text("kept")
    with atomic_path(tmp_path / "latents.h5") as tmp:
        Path(tmp).write_text("complete")
    assert not stale.exists() and other.exists()
    assert (tmp_path / "latents.h5").read_text() == "complete"
