"""Fitting the VAE: checkpoints every epoch, resume after an interruption, progress logs.

:func:`train_vae` trains on the training split of a sample store and
validates on the held-out split. After every epoch it saves a checkpoint
(model with optimizer state, plus the loss history so far) under
``checkpoint_dir``; when called again with the same settings after an
interruption it resumes from the last completed epoch instead of starting
over. A non-finite loss stops training with a clear error and keeps the last
good checkpoint.

Speed: the loader's batch order is kept (``fit(shuffle=False)``: Keras would
otherwise shuffle the order of the streaming loader's batches and defeat its
window cache); images reach the model as ``uint8`` and are scaled on the accelerator
(``BatchLoader(raw=True)``); the per-step callback is declared safe for Keras'
asynchronous dispatch, so no step waits for the loss of the one before (the
NaN check and the progress log read it on a helper thread). With
``precision="mixed_bfloat16"`` the layers compute in bfloat16 (weights, the
output layer and the loss stay float32); the returned model is float32.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from .artifacts import atomic_path, file_checksum, write_text_atomic
from .data.loader import BatchLoader
from .data.samples import TRAIN, VALIDATION, SampleStore
from .errors import ConfigError, UserError
from .model import ArchitecturePreset, as_float32, build_vae, load_model
from .progress import format_duration

log = logging.getLogger(__name__)


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


def _fingerprint(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


class StepMonitor(keras.callbacks.Callback):
    """Per training step: stop on a non-finite loss, and log progress at most every 30 s."""

    # on_train_batch_end only reads the logs: Keras may run it on a helper thread, so the
    # training loop does not wait for each step's loss (a device sync per step otherwise)
    async_safe = True

    def __init__(self, n_train: int, steps: int):
        super().__init__()
        self.n_train = n_train
        self.steps = steps
        self.diverged = False
        self._t0 = time.time()
        self._last_log = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.time()

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.model.stop_training = True
            self.diverged = True
            return
        now = time.time()
        if now - self._last_log > 30:
            self._last_log = now
            elapsed = max(now - self._t0, 1e-9)
            rate = (batch + 1) * self.n_train / max(self.steps, 1) / elapsed
            eta = elapsed / (batch + 1) * (self.steps - batch - 1)
            log.info("  step %d/%d  loss %.4f  %.0f samples/s  epoch ETA %s", batch + 1, self.steps,
                     float(loss or float("nan")), rate, format_duration(eta))


class EpochCheckpoint(StepMonitor):
    """After each epoch: stop on a non-finite loss (keeping the last good checkpoint), else save
    the model with its optimizer and the history so far (atomically) and log the epoch."""

    def __init__(self, checkpoint_dir: Path, fingerprint: str, history: list[dict],
                 n_train: int, epochs: int, steps: int):
        super().__init__(n_train, steps)
        self.dir = checkpoint_dir
        self.fingerprint = fingerprint
        self.history = history
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if self.diverged or not all(math.isfinite(float(v)) for v in (logs or {}).values()):
            raise TrainingDiverged(
                f"training diverged at epoch {epoch + 1} (loss {logs.get('loss') if logs else 'nan'}); "
                f"the last good checkpoint is kept in {self.dir}. Lower 'learning_rate' or check "
                f"the inputs for NaN values."
            )
        seconds = time.time() - self._t0
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()},
               "seconds": round(seconds, 3), "samples_per_s": round(self.n_train / max(seconds, 1e-9), 1)}
        self.history.append(row)
        self.dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.dir / "last.keras") as tmp:
            self.model.save(tmp)
        write_text_atomic(self.dir / "state.json", json.dumps(
            {"fingerprint": self.fingerprint, "epoch": epoch + 1, "history": self.history}, indent=1))
        val = f"  val_loss {row['val_loss']:.4f}" if "val_loss" in row else ""
        left = self.epochs - epoch - 1  # this run's remaining epochs at this epoch's pace
        log.info("epoch %d/%d  loss %.4f%s  %.1fs  %.0f samples/s  ETA %s", epoch + 1, self.epochs,
                 row.get("loss", float("nan")), val, seconds, row["samples_per_s"],
                 format_duration(left * seconds))


def checkpoint_fingerprint(*, preset: ArchitecturePreset, data_checksum: str, epochs: int,
                           batch_size: int, seed: int, learning_rate: float, precision: str,
                           n: int, sample_shape) -> str:
    """What a checkpoint must have been made with to be resumed: the data's content (the sample
    store's checksum), every training setting, the Keras backend and the model code (the
    architecture and loss of ``model.py``), so nothing is resumed from other data or settings."""
    settings = {"preset": preset.as_dict(), "data": data_checksum, "epochs": epochs,
                "batch_size": batch_size, "seed": seed, "learning_rate": learning_rate,
                "precision": precision, "n": n, "shape": list(sample_shape),
                "backend": keras.backend.backend(),
                "model_code": hashlib.sha256(Path(build_vae.__code__.co_filename).read_bytes())
                .hexdigest()}
    return _fingerprint(settings)


def train_vae(samples_path: str | Path, preset: ArchitecturePreset, *, epochs: int,
              batch_size: int, seed: int, checkpoint_dir: str | Path,
              learning_rate: float | None = None, precision: str = "float32",
              data_checksum: str | None = None, callbacks=()):
    """Train a VAE of ``preset`` on a sample store; returns ``(vae, history DataFrame)``.

    ``precision``: ``"float32"`` or ``"mixed_bfloat16"`` (the returned model is float32 either way).
    ``data_checksum``: the store's checksum when the caller has it
    (:func:`~concept_saliency.artifacts.file_checksum`); computed otherwise. A checkpoint in
    ``checkpoint_dir`` is resumed only when made with the same data and settings
    (:func:`checkpoint_fingerprint`). ``callbacks``: more Keras callbacks, called after the
    checkpoint of each epoch is written.
    """
    if epochs < 1:
        raise ConfigError(f"config key 'epochs': must be at least 1, got {epochs}")
    if batch_size < 1:
        raise ConfigError(f"config key 'batch_size': must be at least 1, got {batch_size}")
    lr = float(learning_rate or preset.learning_rate)
    checkpoint_dir = Path(checkpoint_dir)
    with SampleStore(str(samples_path)) as store:
        train_idx = np.nonzero(store.split == TRAIN)[0]
        val_idx = np.nonzero(store.split == VALIDATION)[0]
        if len(train_idx) == 0:
            raise ConfigError(f"{samples_path}: no training samples (all are held out)")
        fingerprint = checkpoint_fingerprint(
            preset=preset, data_checksum=data_checksum or file_checksum(samples_path),
            epochs=epochs, batch_size=batch_size, seed=seed, learning_rate=lr,
            precision=precision, n=len(store), sample_shape=store.sample_shape)

        history: list[dict] = []
        initial_epoch = 0
        vae = None
        state_file = checkpoint_dir / "state.json"
        if state_file.exists():
            try:
                state = json.loads(state_file.read_text())
            except json.JSONDecodeError:
                state = {}
            if state.get("fingerprint") == fingerprint and 0 < state.get("epoch", 0) <= epochs:
                vae = load_model(checkpoint_dir / "last.keras", "checkpoint", compile=True)
                initial_epoch = int(state["epoch"])
                history = list(state["history"])[:initial_epoch]
                log.info("resuming from the checkpoint of epoch %d in %s", initial_epoch, checkpoint_dir)
            else:
                log.info("not resuming the checkpoint in %s: it was made with other data or "
                         "settings; training from the start", checkpoint_dir)
                shutil.rmtree(checkpoint_dir, ignore_errors=True)
        if vae is None:
            keras.utils.set_random_seed(seed)
            vae = build_vae(preset, store.sample_shape, seed=seed, precision=precision)
            compile_vae(vae, lr)

        train = BatchLoader(store, train_idx, batch_size, shuffle=True, seed=seed, epoch=initial_epoch,
                            raw=True)
        val = BatchLoader(store, val_idx, batch_size, shuffle=False, raw=True) if len(val_idx) else None
        log.info("training %s on %d samples (%d held out), %d epochs of %d steps, batch %d",
                 preset.name, len(train_idx), len(val_idx), epochs, len(train), batch_size)
        checkpoint = EpochCheckpoint(checkpoint_dir, fingerprint, history, len(train_idx),
                                     epochs, len(train))
        if initial_epoch < epochs:
            vae.fit(train, validation_data=val, epochs=epochs, initial_epoch=initial_epoch,
                    callbacks=[checkpoint, *callbacks], **FIT_OPTIONS)
    return as_float32(vae, preset), pd.DataFrame(history)


#: ``fit`` settings of training. ``shuffle=False``: the loader shuffles (windows of whole HDF5
#: chunks, then samples within them); Keras' own shuffling of a PyDataset's batch order would
#: send each batch to another window and read (decompress) a whole window per batch.
FIT_OPTIONS = {"shuffle": False, "verbose": 0}


def compile_vae(vae, learning_rate: float) -> None:
    """Compile for ``fit`` as training does (Adam; XLA-compiled steps where the backend has it)."""
    vae.compile(optimizer=keras.optimizers.Adam(learning_rate))


def clear_checkpoint(checkpoint_dir: str | Path) -> None:
    """Remove the resume checkpoint once the final model is safely written."""
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
