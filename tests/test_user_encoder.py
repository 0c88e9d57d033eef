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
    assert {"deletion_auc", "insertion_auc", "randomisation_check", "mass_ratio"} <= set(summary.columns)
    assert summary.loc[summary["method"] != "random", "mass_ratio"].notna().all(), summary
    for name in ("red_square.png", "stripes.png"):
        assert (base / "figures" / name).stat().st_size > 0
    assert (base / "evaluation" / "evaluation.png").stat().st_size > 0
    assert planned_jobs(work) == {}
    shutil.rmtree(work / "results")


# ------------------------------------------------------------------ your own encoder on spatial data


def spatial_encoder(path, size=32, latent=4, channels=1, width=None):
    """A user's encoder of gene images: (size, size, 1) -> mu, logvar."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(5)
    inp = keras.Input((size, width or size, channels), name="genes")
    h = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="c1")(inp)
    h = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="c2")(h)
    h = layers.Flatten(name="flat")(h)
    model = keras.Model(inp, [layers.Dense(latent, name="mu")(h), layers.Dense(latent, name="logvar")(h)])
    model.save(path)
    return model


def spatial_decoder(path, size=32, latent=4):
    """Its decoder: the latent -> a (size, size, 1) gene image."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(6)
    inp = keras.Input((latent,), name="z")
    h = layers.Dense((size // 4) ** 2 * 4, activation="relu")(inp)
    h = layers.Reshape((size // 4, size // 4, 4))(h)
    h = layers.Conv2DTranspose(8, 3, strides=2, padding="same", activation="relu")(h)
    out = layers.Conv2DTranspose(1, 3, strides=2, padding="same", activation="sigmoid")(h)
    model = keras.Model(inp, out, name="my_decoder")
    model.save(path)
    return model


def test_the_input_shape_is_read_from_the_keras_file_without_keras(tmp_path):
    import keras
    from keras import layers

    from concept_saliency.keras_files import input_shape

    spatial_encoder(tmp_path / "f.keras", size=24)
    assert input_shape(tmp_path / "f.keras") == (24, 24, 1)
    keras.Sequential([keras.Input((12, 12, 1)), layers.Flatten(), layers.Dense(2)]).save(tmp_path / "s.keras")
    assert input_shape(tmp_path / "s.keras") == (12, 12, 1)
    free = keras.Input((None, None, 1))
    keras.Model(free, layers.GlobalAveragePooling2D()(layers.Conv2D(2, 3)(free))).save(tmp_path / "free.keras")
    assert input_shape(tmp_path / "free.keras") == (None, None, 1)
    a, b = keras.Input((4,)), keras.Input((4,))
    keras.Model([a, b], layers.Add()([a, b])).save(tmp_path / "two.keras")
    assert input_shape(tmp_path / "two.keras") is None  # several inputs: the import stage refuses them
    (tmp_path / "bad.keras").write_bytes(b"not a zip")
    assert input_shape(tmp_path / "bad.keras") is None


def tissue_config(models, **dataset):
    return {"datasets": {"t": {"type": "spatial", "source": {"synthetic_tissue": {}}, "models": models,
                               "concepts": {"seed_genes": {"l1": "Layer1g001"}}, **dataset}}}


def test_a_spatial_dataset_takes_its_grid_from_its_encoder_or_refuses_before_any_job(tmp_path):
    from concept_saliency.config import encoder_grid

    enc = str(tmp_path / "enc.keras")
    spatial_encoder(enc, size=32)
    spatial_encoder(tmp_path / "enc16.keras", size=16)
    spatial_encoder(tmp_path / "rgb.keras", channels=3)
    spatial_encoder(tmp_path / "wide.keras", size=16, width=32)
    spatial_encoder(tmp_path / "enc12.keras", size=12)
    spatial_decoder(tmp_path / "dec.keras")
    key = "datasets.t.models.mine.keras_file"
    config = validate_config(tissue_config({"mine": {"keras_file": enc, "latent_output": "mu"}}), SCHEMA)
    assert encoder_grid("t", config["datasets"]["t"]) == (32, key)
    validate_config(tissue_config({"mine": {"keras_file": enc}}, grid_size=32), SCHEMA)
    validate_config(tissue_config({"mine": {"keras_file": enc, "decoder_file": str(tmp_path / "dec.keras")}}),
                    SCHEMA)
    for models, extra, message in (
        ({"mine": {"keras_file": enc}}, {"grid_size": 16},
         f"'datasets.t.grid_size': 16, but the encoder '{key}' takes 32x32 gene images; set grid_size: 32"),
        ({"mine": {"keras_file": str(tmp_path / "rgb.keras")}}, {}, f"'{key}': .*takes images of 3 channels"),
        ({"mine": {"keras_file": str(tmp_path / "wide.keras")}}, {},
         f"'{key}': .*16x32 images; the spot grid is square"),
        ({"mine": {"keras_file": enc}, "other": {"keras_file": str(tmp_path / "enc16.keras")}}, {},
         f"'datasets.t.models.other.keras_file': takes 16x16 gene images, but '{key}' takes 32x32"),
        ({"mine": {"keras_file": str(tmp_path / "enc12.keras")}, "paper": {"preset": "paper-mob"}}, {},
         f"'{key}': it takes 12x12 gene images, and model 'paper' trains on the same grid: .*multiples of 8"),
        ({"paper": {"preset": "paper-mob", "decoder_file": str(tmp_path / "dec.keras")}}, {},
         "'datasets.t.models.paper.decoder_file': only for a keras_file model"),
        ({"mine": {"keras_file": enc, "decoder_file": str(tmp_path / "nope.keras")}}, {},
         "'datasets.t.models.mine.decoder_file': no such file"),
    ):
        with pytest.raises(ConfigError, match=message):
            validate_config(tissue_config(models, **extra), SCHEMA)
    model = {"keras_file": enc, "decoder_file": str(tmp_path / "dec.keras")}
    images = {"datasets": {"d": {"type": "images", "source": {"synthetic_shapes": {}}, "models": {"m": model},
                                 "concepts": {"attributes": "all"}}}}
    with pytest.raises(ConfigError, match="'datasets.d.models.m.decoder_file': only spatial datasets"):
        validate_config(images, SCHEMA)


def test_import_decoder_checks_the_decoder_against_the_encoder_and_the_gene_images(tmp_path, rng):
    from concept_saliency.data.samples import write_samples
    from concept_saliency.stages.import_decoder import import_decoder

    x = rng.random((6, 32, 32, 1)).astype(np.float32)
    write_samples(tmp_path / "samples.h5", x, [f"g{i}" for i in range(6)], np.zeros(6, np.int8))
    spatial_encoder(tmp_path / "enc.keras")
    run_stage("import_encoder", ("encoder",), samples=str(tmp_path / "samples.h5"),
              keras_file=str(tmp_path / "enc.keras"), encoder=str(tmp_path / "imported.keras"), latent_output="mu")
    key = "datasets.t.models.mine.decoder_file"
    common = dict(samples=str(tmp_path / "samples.h5"), encoder=str(tmp_path / "imported.keras"),
                  decoder=str(tmp_path / "out.keras"), key=key)
    spatial_decoder(tmp_path / "dec5.keras", latent=5)
    with pytest.raises(ConfigError, match=f"'{key}': .*takes inputs shaped \\(5,\\), but the encoder's "
                                          f"latent has 4"):
        import_decoder(decoder_file=str(tmp_path / "dec5.keras"), **common)
    spatial_decoder(tmp_path / "dec16.keras", size=16)
    with pytest.raises(ConfigError, match=f"'{key}': .*gives outputs shaped \\(16, 16, 1\\), but the gene "
                                          f"images of .* are \\(32, 32, 1\\)"):
        import_decoder(decoder_file=str(tmp_path / "dec16.keras"), **common)
    assert not (tmp_path / "out.keras").exists()
    mine = spatial_decoder(tmp_path / "dec.keras")
    run_stage("import_decoder", ("decoder",), decoder_file=str(tmp_path / "dec.keras"), **common)
    from concept_saliency.model import load_model

    z = rng.normal(size=(3, 4)).astype(np.float32)
    np.testing.assert_allclose(load_model(tmp_path / "out.keras")(z), mine(z), rtol=1e-6)
    record = json.loads((tmp_path / "out.keras.prov.json").read_text())
    assert record["format"] == "csm.keras-model" and record["output_shape"] == [32, 32, 1]


@pytest.mark.workflow
def test_the_workflow_runs_on_a_users_encoder_of_gene_images(tmp_path):
    """A spatial dataset with your own encoder (and, for one model, your decoder): the grid is the
    encoder's 32x32 (auto would make 16), nothing is trained, the decoded concept vector only
    where a decoder is given."""
    import anndata as ad
    import h5py

    from test_workflow import copy_workflow, planned_jobs, snakemake

    from concept_saliency.data.grid import read_grid
    from concept_saliency.model import load_model

    work = copy_workflow(tmp_path / "wf")
    spatial_encoder(tmp_path / "enc.keras")
    spatial_decoder(tmp_path / "dec.keras")
    enc, dec = str(tmp_path / "enc.keras"), str(tmp_path / "dec.keras")
    config = {
        "results": "results",
        "saliency": {"methods": {"vanilla_gradient": {}}},
        "evaluation": {"randomisation_samples": 2, "curve_steps": 4},
        "datasets": {"tissue": {
            "type": "spatial",
            "source": {"synthetic_tissue": {"n_layers": 3, "genes_per_layer": 10, "n_housekeeping": 5,
                                            "n_noise": 10, "grid": [14, 12]}},
            "normalisation": {"method": "scale", "min_spots": 3},
            "models": {"mine": {"keras_file": enc, "latent_output": "mu", "decoder_file": dec},
                       "bare": {"keras_file": enc, "latent_output": "mu"}},
            "concepts": {"seed_genes": {"layer1": {"gene": "Layer1g001", "n_genes": 5}}},
            "explain": {"top_k": 2},
        }},
    }
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    jobs = planned_jobs(work)
    assert "train" not in jobs and "plot_loss" not in jobs
    assert jobs["import_encoder"] == 2 and jobs["import_decoder"] == 1
    snakemake(work, "--cores", "2")
    results = work / "results" / "tissue"
    with h5py.File(results / "data" / "samples.h5") as f:
        assert f["x"].shape[1:] == (32, 32, 1)
    assert not (results / "mine" / "model" / "vae.keras").exists()
    mine = ad.read_h5ad(results / "mine" / "maps.h5ad")
    bare = ad.read_h5ad(results / "bare" / "maps.h5ad")
    # the decoded concept vector is the user's decoder on the concept vector, back on the spots
    index, _ = read_grid(results / "data" / "grid.h5")
    vector = np.asarray(mine.uns["csm_concepts"]["layer1"]["vector"], np.float32)
    image = np.asarray(load_model(dec)(vector[None]))[0, ..., 0]
    np.testing.assert_allclose(mine.obs["csm_layer1_decoded"], image[index.row, index.col], rtol=1e-5, atol=1e-6)
    assert "csm_layer1_decoded" not in bare.obs and np.isfinite(bare.obs["csm_layer1_vanilla_gradient"]).all()
    assert json.loads((results / "bare" / "maps.h5ad.prov.json").read_text())["decoded"] is False
    for model in ("mine", "bare"):
        assert (results / model / "figures" / "layer1.png").stat().st_size > 10_000
    record = json.loads((results / "mine" / "model" / "imported_decoder.keras.prov.json").read_text())
    assert record["format"] == "csm.keras-model" and record["inputs"]["decoder_file"]["checksum"]
    assert planned_jobs(work) == {}
    shutil.rmtree(work / "results")
