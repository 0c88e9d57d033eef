"""Shared fixtures: small real Keras models, the shared data folder, the repo root."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]


def shared_data() -> Path:
    """The shared real data (CSM_TEST_DATA, default ../shared/data beside the checkout)."""
    return Path(os.environ.get("CSM_TEST_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def data_dir() -> Path:
    path = shared_data()
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path} (set CSM_TEST_DATA)")
    return path


def tiny_encoder(activation="relu", seed=0, fused=False, latent=3, shape=(8, 8, 2), bias=True):
    """A small conv encoder with batch norm (non-trivial statistics) and two latent heads."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inp = keras.Input(shape)
    if fused:
        h = layers.Conv2D(4, 3, strides=2, padding="same", activation=activation, use_bias=bias)(inp)
    else:
        h = layers.Conv2D(4, 3, strides=2, padding="same", use_bias=bias)(inp)
        h = layers.BatchNormalization()(h)
        h = layers.Activation(activation)(h)
    h = layers.Conv2D(5, 3, strides=1, padding="same", use_bias=bias)(h)
    h = layers.ReLU()(h) if activation == "relu" else layers.Activation(activation)(h)
    h = layers.Flatten()(h)
    h = layers.Dense(6, activation=activation, use_bias=bias)(h)
    z = layers.Dense(latent, name="z_mean", use_bias=bias)(h)
    logvar = layers.Dense(latent, name="z_log_var")(h)
    model = keras.Model(inp, [z, logvar], name="tiny_encoder")
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.3, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, layer.moving_variance.shape))
            layer.gamma.assign(rng.uniform(0.5, 1.5, layer.gamma.shape))
            layer.beta.assign(rng.normal(0, 0.2, layer.beta.shape))
    return model


@pytest.fixture(scope="session")
def demo(tmp_path_factory) -> Path:
    """The built-in demo (config/config.yaml, as `make demo` runs it) through Snakemake, once per
    session in a temporary copy of the workflow; tests may plan (-n) in it, and edit files only
    if they restore them."""
    from workflow_run import copy_workflow, snakemake

    work = copy_workflow(tmp_path_factory.mktemp("demo"))
    snakemake(work, "--cores", "2", timeout=1500)
    return work


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
