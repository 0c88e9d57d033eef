"""The train stage: fit the VAE of a preset; write the model, its encoder and the loss history."""

from __future__ import annotations

import logging

from ..artifacts import atomic_path, file_checksum
from ..backend import describe_device
from ..presets import get_preset
from ..training import clear_checkpoint, train_vae

log = logging.getLogger("concept_saliency")


def train(*, samples: str, vae: str, encoder: str, history: str, preset: str, epochs: int,
          batch_size: int, seed: int, checkpoint_dir: str, learning_rate: float | None = None,
          precision: str = "float32") -> dict:
    """Train the VAE; write ``vae`` (the whole model), ``encoder`` and the loss ``history``.

    Resumes from the checkpoint in ``checkpoint_dir`` when it was made with the same data
    and settings (:func:`~concept_saliency.training.train_vae`), and clears it once the
    model is written. The loss figure is the plot_loss stage's, so that editing figure
    code never retrains a model. Returns the device and the preset's architecture.
    """
    arch = get_preset(preset)
    device = describe_device()
    log.info("device: %s", device)
    model, hist = train_vae(samples, arch, epochs=epochs, batch_size=batch_size, seed=seed,
                            checkpoint_dir=checkpoint_dir, learning_rate=learning_rate,
                            precision=precision, data_checksum=file_checksum(samples))
    with atomic_path(vae) as tmp:
        model.save(tmp)
    with atomic_path(encoder) as tmp:
        model.encoder.save(tmp)
    with atomic_path(history) as tmp:
        hist.to_csv(tmp, index=False, float_format="%.6g")
    clear_checkpoint(checkpoint_dir)
    return {"device": device, "architecture": arch.as_dict()}
