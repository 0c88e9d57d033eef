"""Training: loss goes down, checkpoints every epoch, resume after an interruption."""

import json

import numpy as np
import pytest

from concept_saliency.data.samples import assign_split, write_samples
from concept_saliency.data.synthetic import make_shapes
from concept_saliency.model import ArchitecturePreset
from concept_saliency.training import train_vae
from helpers import EpochsSeen, InterruptAfter

TINY = ArchitecturePreset("tiny", (8, 16), (3, 3), (16,), 4, 5e-4, 3e-3)


@pytest.fixture
def store(tmp_path):
    data = make_shapes(96, size=16, seed=0)
    path = tmp_path / "samples.h5"
    write_samples(path, data.images, data.ids, assign_split(96, 0.25, 0), data.labels, data.names)
    return path




def test_training_checkpoints_and_resumes_without_repeating_epochs(store, tmp_path):
    ckpt = tmp_path / "ckpt"
    # first run: interrupted after its second epoch (the checkpoint of epoch 2 is written first)
    with pytest.raises(KeyboardInterrupt):
        train_vae(store, TINY, epochs=4, batch_size=16, seed=0, checkpoint_dir=ckpt,
                  callbacks=[InterruptAfter(2)])
    state = json.loads((ckpt / "state.json").read_text())
    assert state["epoch"] == 2 and (ckpt / "last.keras").exists()

    # second run resumes at epoch 3: it trains epochs 3 and 4 only
    epochs = EpochsSeen()
    vae, history = train_vae(store, TINY, epochs=4, batch_size=16, seed=0, checkpoint_dir=ckpt,
                             callbacks=[epochs])
    assert epochs.seen == [3, 4]
    assert list(history["epoch"]) == [1, 2, 3, 4]
    assert {"loss", "val_loss", "kl_loss", "reconstruction_loss"} <= set(history.columns)

    # an uninterrupted run with the same settings sees the same batches: same final loss
    _, straight = train_vae(store, TINY, epochs=4, batch_size=16, seed=0,
                            checkpoint_dir=tmp_path / "other")
    np.testing.assert_allclose(history["loss"].iloc[-1], straight["loss"].iloc[-1], rtol=0.05)
    assert straight["loss"].iloc[-1] < straight["loss"].iloc[0]


def test_a_checkpoint_from_other_settings_is_not_resumed(store, tmp_path):
    ckpt = tmp_path / "ckpt"
    train_vae(store, TINY, epochs=1, batch_size=16, seed=0, checkpoint_dir=ckpt)
    _, history = train_vae(store, TINY, epochs=2, batch_size=32, seed=0, checkpoint_dir=ckpt)
    assert list(history["epoch"]) == [1, 2]
    assert json.loads((ckpt / "state.json").read_text())["epoch"] == 2


def test_mixed_bfloat16_trains_in_bfloat16_and_saves_a_float32_model(store, tmp_path):
    import keras

    from concept_saliency import training
    from concept_saliency.model import load_model

    used = {}
    original = training.compile_vae

    def spy(vae, lr):  # the model that is trained: its layers' arithmetic
        used["compute"] = vae.encoder.get_layer("enc_conv1").compute_dtype
        used["output"] = vae.decoder.get_layer("reconstruction").compute_dtype
        original(vae, lr)

    training.compile_vae = spy
    try:
        vae, history = train_vae(store, TINY, epochs=1, batch_size=16, seed=0,
                                 checkpoint_dir=tmp_path / "ckpt", precision="mixed_bfloat16")
    finally:
        training.compile_vae = original
    assert used == {"compute": "bfloat16", "output": "float32"}
    assert np.isfinite(history["loss"]).all()
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    vae.encoder.save(tmp_path / "encoder.keras")
    encoder = load_model(tmp_path / "encoder.keras", "encoder")
    assert encoder.get_layer("enc_conv1").compute_dtype == "float32"
    x = np.random.default_rng(0).random((5, 16, 16, 3)).astype("float32")
    z_mean, _ = encoder(x)
    z_mean = keras.ops.convert_to_numpy(z_mean)
    assert z_mean.dtype == np.float32 and z_mean.shape == (5, 4) and np.isfinite(z_mean).all()
