"""Any model: a user's own trained Keras encoder, through the library and through Snakemake."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from helpers import REPO, run_stage

from concept_saliency.config import validate_config
from concept_saliency.errors import ConfigError

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def user_encoder(path, size=16, latent=5):
    """A user's encoder: own layer names, two outputs (the latent is 'mu'), standard layers."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(3)
    inp = keras.Input((size, size, 3), name="image")
    h = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="block1")(inp)
    h = layers.BatchNormalization(name="norm1")(h)
    h = layers.Conv2D(8, 3, strides=2, padding="same", name="block2")(h)
    h = layers.LeakyReLU(0.2, name="leaky")(h)
    h = layers.MaxPooling2D(2, name="pool")(h)
    h = layers.Flatten(name="flat")(h)
    mu = layers.Dense(latent, name="mu")(h)
    logvar = layers.Dense(latent, name="logvar")(h)
    model = keras.Model(inp, [logvar, mu], name="my_encoder")
    model.save(path)
    return model


def test_the_library_takes_a_users_encoder_and_names_its_latent(tmp_path, rng):
    from concept_saliency.model import load_model
    from concept_saliency.saliency import attribute

    user_encoder(tmp_path / "enc.keras")
    model = load_model(tmp_path / "enc.keras")
    x = rng.random((3, 16, 16, 3)).astype(np.float32)
    with pytest.raises(ConfigError, match="has 2 outputs \\(logvar, mu\\); say which one is the latent"):
        attribute(model, np.ones(5), x, "vanilla_gradient")
    for method in ("vanilla_gradient", "deeplift", "guided_backprop"):
        maps = attribute(model, np.ones(5), x, method, latent_output="mu")
        assert maps.shape == x.shape and np.abs(maps).max() > 0


def test_import_encoder_checks_the_model_against_the_data(tmp_path, rng):
    from concept_saliency.data.samples import write_samples
    from concept_saliency.model import load_model
    from concept_saliency.stages.import_encoder import import_encoder

    user_encoder(tmp_path / "enc.keras")
    samples = tmp_path / "samples.h5"
    x = (rng.random((10, 16, 16, 3)) * 255).astype(np.uint8)
    write_samples(samples, x, [f"s{i}" for i in range(10)], np.zeros(10, np.int8))
    key = "datasets.faces.models.mine.keras_file"
    with pytest.raises(ConfigError, match=f"config key '{key}': .*no output named 'z'; its outputs are logvar, mu"):
        import_encoder(samples=str(samples), keras_file=str(tmp_path / "enc.keras"),
                       encoder=str(tmp_path / "out.keras"), latent_output="z", key=key)
    user_encoder(tmp_path / "big.keras", size=32)
    with pytest.raises(ConfigError, match=r"takes inputs shaped \(32, 32, 3\), but the samples .* are \(16, 16, 3\)"):
        import_encoder(samples=str(samples), keras_file=str(tmp_path / "big.keras"),
                       encoder=str(tmp_path / "out.keras"), latent_output="mu", key=key)
    assert not (tmp_path / "out.keras").exists()  # nothing written on failure
    run_stage("import_encoder", ("encoder",), samples=str(samples), keras_file=str(tmp_path / "enc.keras"),
              encoder=str(tmp_path / "out.keras"), latent_output="mu", key=key)
    latent = load_model(tmp_path / "out.keras")
    assert len(latent.outputs) == 1 and latent.outputs[0].shape[-1] == 5
    record = json.loads((tmp_path / "out.keras.prov.json").read_text())
    assert record["inputs"]["keras_file"]["checksum"].startswith("sha256:")


def test_a_model_is_a_preset_or_a_keras_file(tmp_path):
    (tmp_path / "enc.keras").write_bytes(b"")

    def config(model):
        return {"datasets": {"d": {"type": "images", "source": {"synthetic_shapes": {}},
                                   "models": {"m": model}, "concepts": {"attributes": "all"}}}}

    validate_config(config({"keras_file": str(tmp_path / "enc.keras"), "latent_output": "mu"}), SCHEMA)
    for model, message in (
        ({"preset": "demo-shapes", "keras_file": str(tmp_path / "enc.keras")}, "not both"),
        ({"epochs": 3}, "give either 'preset'"),
        ({"keras_file": str(tmp_path / "nope.keras")}, "'datasets.d.models.m.keras_file': no such file"),
        ({"preset": "demo-shapes", "latent_output": "mu"}, "only for a keras_file model"),
    ):
        with pytest.raises(ConfigError, match=message):
            validate_config(config(model), SCHEMA)


@pytest.mark.workflow
def test_the_workflow_runs_on_a_users_encoder_without_training(tmp_path):
    """Config points at a .keras file: import, encode, concepts, maps, figures, evaluation."""
    from test_workflow import copy_workflow, planned_jobs, snakemake

    (tmp_path / "wf").mkdir()
    work = copy_workflow(tmp_path / "wf")
    user_encoder(tmp_path / "enc.keras")
    config = {
        "results": "results",
        "saliency": {"methods": {"vanilla_gradient": {}, "deeplift": {}}},
        "evaluation": {"randomisation_samples": 2, "curve_steps": 4},
        "datasets": {"shapes": {
            "type": "images",
            "source": {"synthetic_shapes": {"n_samples": 80, "image_size": 16}},
            "image_size": 16,
            "models": {"mine": {"keras_file": str(tmp_path / "enc.keras"), "latent_output": "mu"}},
            "concepts": {"attributes": ["red_square", "stripes"], "num_samples": 10},
            "explain": {"top_k": 2},
        }},
    }
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    assert "train" not in planned_jobs(work)
    snakemake(work, "--cores", "2")
    base = work / "results" / "shapes" / "mine"
    assert not (base / "model" / "vae.keras").exists() and not (base / "logs" / "train.log").exists()
    record = json.loads((base / "model" / "imported.keras.prov.json").read_text())
    assert record["format"] == "csm.keras-model" and record["parameters"]["latent_output"] == "mu"
    import h5py

    with h5py.File(base / "latents.h5") as f:
        assert f["z"].shape == (80, 5)
    with h5py.File(base / "saliency" / "deeplift.h5") as f:
        assert f["stripes/maps"].shape == (2, 16, 16, 3)
    summary = pd.read_csv(base / "evaluation" / "summary.tsv", sep="\t")
    assert sorted(summary["method"][:-1]) == ["deeplift", "vanilla_gradient"]
    assert summary["method"].iloc[-1] == "random"
    assert {"deletion_auc", "insertion_auc", "randomisation_check", "mass_inside"} <= set(summary.columns)
    for name in ("red_square.png", "stripes.png"):
        assert (base / "figures" / name).stat().st_size > 0
    assert (base / "evaluation" / "evaluation.png").stat().st_size > 0
    assert planned_jobs(work) == {}
    shutil.rmtree(work / "results")
