"""The train stage: fit the VAE, write the model, encoder and loss history."""

from __future__ import annotations

import logging

from ..artifacts import Provenance, atomic_path

log = logging.getLogger("concept_saliency")


def train(*, samples: str, model: str, encoder: str, history: str, preset: str,
          epochs: int, batch_size: int, seed: int, checkpoint_dir: str,
          learning_rate: float | None = None, precision: str = "float32") -> None:
    """Train the VAE; write ``vae.keras``, ``encoder.keras`` and the loss history (its figure is
    the plot_loss stage's, so that editing figure code never retrains a model)."""
    from ..backend import describe_device
    from ..model import get_preset
    from ..training import clear_checkpoint, train_vae

    arch = get_preset(preset)
    params = dict(preset=arch.as_dict(), epochs=epochs, batch_size=batch_size, seed=seed,
                  learning_rate=learning_rate, precision=precision)
    prov = Provenance("train", params, {"samples": samples})
    device = describe_device()
    log.info("device: %s", device)
    prov.extra["device"] = device
    vae, hist = train_vae(samples, arch, epochs=epochs, batch_size=batch_size, seed=seed,
                          checkpoint_dir=checkpoint_dir, learning_rate=learning_rate,
                          precision=precision,
                          data_checksum=prov.checksums()["samples"]["checksum"])
    with atomic_path(model) as tmp:
        vae.save(tmp)
    with atomic_path(encoder) as tmp:
        vae.encoder.save(tmp)
    with atomic_path(history) as tmp:
        hist.to_csv(tmp, index=False, float_format="%.6g")
    for path, fmt in ((model, "csm.keras-model"), (encoder, "csm.keras-model"),
                      (history, "csm.history")):
        prov.write(path, fmt)
    clear_checkpoint(checkpoint_dir)
