"""Presets, the VAE, safe loading and choosing the latent output."""

import numpy as np
import pytest

from helpers import tiny_encoder

from concept_saliency.errors import ConfigError, InputDataError
from concept_saliency.model import (PRESETS, build_vae, check_input_shape, get_preset, latent_model,
                                    load_model)


def test_paper_celeba_preset_is_the_papers_architecture():
    p = get_preset("paper-celeba")
    assert p.conv_filters == (64, 128, 256, 512, 1024) and p.conv_kernels == (5, 5, 5, 5, 2)
    assert p.dense_units == (512,) and p.latent_dim == 400 and p.layout == "brocki2019"
    # the notebook's 5e-4 * mean over latent dims of (mu^2 + var - 1 - log var) = this * KL
    assert p.kl_weight == pytest.approx(2 * 5e-4 / 400)
    mob = get_preset("paper-mob")
    assert mob.conv_filters == (16, 32, 64) and mob.dense_units == (256, 256)
    assert mob.latent_dim == 20 and mob.kl_weight == 0.5e-4 and mob.learning_rate == 5e-4


@pytest.mark.parametrize("name", ["demo-shapes", "paper-mob"])
def test_vae_shapes_and_save_load_round_trip(tmp_path, name):
    shape = (32, 32, 3) if name == "demo-shapes" else (32, 32, 1)
    vae = build_vae(get_preset(name), shape, seed=0)
    x = np.random.default_rng(0).random((4, *shape)).astype("float32")
    out = vae(x)
    assert out["reconstruction"].shape == (4, *shape)
    assert out["z_mean"].shape == (4, PRESETS[name].latent_dim)
    vae.save(tmp_path / "vae.keras")
    vae.encoder.save(tmp_path / "enc.keras")
    again = load_model(tmp_path / "vae.keras")
    np.testing.assert_allclose(np.asarray(again(x)["reconstruction"]), np.asarray(out["reconstruction"]),
                               rtol=1e-5, atol=1e-6)
    enc = latent_model(load_model(tmp_path / "enc.keras"))
    np.testing.assert_allclose(np.asarray(enc(x)), np.asarray(out["z_mean"]), rtol=1e-5, atol=1e-6)


def test_input_size_must_fit_the_strides():
    check_input_shape(get_preset("paper-celeba"), (128, 128, 3))
    with pytest.raises(ConfigError, match="multiples of 32; the samples are 100x100"):
        check_input_shape(get_preset("paper-celeba"), (100, 100, 3))
    with pytest.raises(ConfigError, match="unknown architecture 'vgg'"):
        get_preset("vgg")


def test_latent_output_by_name_index_or_default():
    model = tiny_encoder()
    assert latent_model(model).outputs[0].shape[-1] == 3
    x = np.zeros((1, 8, 8, 2), "float32")
    np.testing.assert_array_equal(np.asarray(latent_model(model, "z_log_var")(x)),
                                  np.asarray(model(x)[1]))
    np.testing.assert_array_equal(np.asarray(latent_model(model, 1)(x)), np.asarray(model(x)[1]))
    with pytest.raises(ConfigError, match="no output named 'mu'; its outputs are z_mean, z_log_var"):
        latent_model(model, "mu")


def test_safe_loading_refuses_lambda_layers_and_junk(tmp_path):
    import keras

    inp = keras.Input((4,))
    out = keras.layers.Lambda(lambda t: t * 2)(inp)
    keras.Model(inp, out).save(tmp_path / "lambda.keras")
    with pytest.raises(InputDataError, match="refused by safe loading.*Lambda layer"):
        load_model(tmp_path / "lambda.keras")
    (tmp_path / "junk.keras").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(InputDataError, match="junk.keras"):
        load_model(tmp_path / "junk.keras")
    with pytest.raises(InputDataError, match="must be a Keras 3 '.keras' file"):
        load_model(tmp_path / "model.h5")
