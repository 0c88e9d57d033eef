"""Bad models: a corrupt .keras file, a latent that does not match the concept vectors, a
Lambda layer refused by safe loading. One line each, naming the file; nothing written."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from concept_saliency.errors import ConfigError, InputDataError

from helpers import assert_no_partial_artifacts, user_error


@pytest.fixture
def work(tmp_path):
    from concept_saliency.artifacts import Provenance
    from concept_saliency.data.samples import assign_split, write_samples

    from helpers import tiny_encoder

    res = tmp_path / "results" / "toy"
    samples = res / "data" / "samples.h5"
    x = np.random.default_rng(0).uniform(0, 1, (16, 8, 8, 2)).astype(np.float32)
    write_samples(samples, x, [f"s{i:02d}" for i in range(16)], assign_split(16, 0.25, 0))
    Provenance("test").write(samples, "csm.samples")
    good = tmp_path / "user" / "encoder.keras"
    good.parent.mkdir()
    tiny_encoder(latent=3).save(good)
    return {"res": res, "samples": samples, "good": good, "root": tmp_path / "results"}


def corrupt_variants(good, dest):
    data = good.read_bytes()
    out = {}
    out["random bytes"] = bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8))
    out["truncated"] = data[: len(data) // 2]
    out["empty"] = b""
    out["html error page"] = b"<html><body>502 Bad Gateway</body></html>"
    files = {}
    for name, payload in out.items():
        path = dest / f"{name.replace(' ', '_')}.keras"
        path.write_bytes(payload)
        files[name] = path
    no_config = dest / "no_config.keras"  # a zip, but without the model's config
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(no_config, "w") as zf:
        for item in src.namelist():
            if item != "config.json":
                zf.writestr(item, src.read(item))
    files["zip without config.json"] = no_config
    bad_json = dest / "bad_json.keras"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad_json, "w") as zf:
        for item in src.namelist():
            zf.writestr(item, b"{not json" if item == "config.json" else src.read(item))
    files["config.json not JSON"] = bad_json
    return files


def test_corrupt_keras_files_are_refused_by_the_loader(work, tmp_path):
    from concept_saliency.model import load_model

    for case, path in corrupt_variants(work["good"], tmp_path / "user").items():
        with user_error(str(path), error=InputDataError) as refusal:
            load_model(path=path, what="encoder")
        message = refusal.message
        assert "keras" in message.lower(), (case, message)


def test_a_corrupt_user_encoder_stops_import_with_nothing_written(work, tmp_path):
    from concept_saliency.stages.import_encoder import import_encoder

    out = work["res"] / "mine" / "model" / "imported.keras"
    for case, path in corrupt_variants(work["good"], tmp_path / "user").items():
        with user_error(str(path), error=InputDataError):
            import_encoder(samples=str(work["samples"]), keras_file=str(path), encoder=str(out))
        assert not out.exists(), case
    assert_no_partial_artifacts(work["root"])


def test_a_corrupt_trained_encoder_stops_encode(work, tmp_path):
    from concept_saliency.stages.encode import encode

    enc = work["res"] / "m" / "model" / "encoder.keras"
    enc.parent.mkdir(parents=True)
    enc.write_bytes(work["good"].read_bytes()[:3000])
    latents = work["res"] / "m" / "latents.h5"
    with user_error(str(enc), "not a valid .keras file", error=InputDataError):
        encode(samples=str(work["samples"]), encoder=str(enc), latents=str(latents))
    assert not latents.exists()


def test_a_file_that_is_not_keras_3_is_refused(work, tmp_path):
    from concept_saliency.model import load_model

    legacy = tmp_path / "user" / "encoder.h5"
    legacy.write_bytes(b"\x89HDF\r\n\x1a\n")
    with user_error(str(legacy), "Keras 3 '.keras' file", error=InputDataError):
        load_model(path=legacy, what="encoder")


def test_a_latent_size_not_matching_the_concept_vectors(work):
    """Concept vectors made with another model (5 dimensions) against a 3-dimensional latent."""
    from concept_saliency.artifacts import Provenance
    from concept_saliency.concept_vectors import Concept, write_concepts
    from concept_saliency.stages.saliency import saliency

    vectors = work["res"] / "mine" / "concepts" / "concepts.h5"
    positives = np.zeros(16, bool)
    concepts = [Concept("bright", "attribute", np.ones(5), positives)]
    write_concepts(vectors, concepts, np.zeros((16, 1)), {"bright": np.arange(3)},
                   [f"s{i:02d}" for i in range(16)])
    Provenance("test").write(vectors, "csm.concepts")
    maps = work["res"] / "mine" / "saliency" / "vanilla_gradient.h5"
    with user_error(str(vectors), str(work["good"]), "5 dimensions", "has 3", "forcerun", error=ConfigError):
        saliency(
            samples=str(work["samples"]), encoder=str(work["good"]), concepts=str(vectors), maps=str(maps),
            method="vanilla_gradient", options={})
    assert not maps.exists()
    assert_no_partial_artifacts(work["root"])


def test_a_lambda_layer_is_refused_by_safe_loading_and_says_why(work, tmp_path):
    import keras

    from concept_saliency.model import load_model
    from concept_saliency.stages.import_encoder import import_encoder

    marker = tmp_path / "lambda-ran"
    inp = keras.Input((8, 8, 2))
    h = keras.layers.Flatten()(inp)
    h = keras.layers.Lambda(lambda t: t * 2.0, name="doubler")(h)
    z = keras.layers.Dense(3, name="z_mean")(h)
    path = tmp_path / "user" / "lambda.keras"
    keras.Model(inp, z).save(path)
    with user_error(str(path), "safe loading", "Lambda", "arbitrary", error=InputDataError) as refusal:
        load_model(path=path, what="encoder")
    message = refusal.message
    assert "registered custom layer" in message or "re-save" in message
    out = work["res"] / "mine" / "model" / "imported.keras"
    with user_error(str(path), "Lambda", error=InputDataError):
        import_encoder(samples=str(work["samples"]), keras_file=str(path), encoder=str(out))
    assert not out.exists() and not marker.exists()
    assert_no_partial_artifacts(work["root"])


@pytest.mark.parametrize("stage", ["encode", "train", "saliency"])
def test_nan_samples_give_a_clear_error_in_every_stage_that_reads_them(work, stage):
    """NaN in the inputs (a damaged store, or a user's data) stops each stage that reads samples
    with the ids of the bad ones. The inputs are checked, not the model's outputs: on some CPUs
    oneDNN's ReLU maps NaN to 0, so a NaN input can give a finite latent."""
    from concept_saliency.artifacts import Provenance
    from concept_saliency.concept_vectors import Concept, write_concepts
    from concept_saliency.data.samples import assign_split, write_samples

    x = np.random.default_rng(0).uniform(0, 1, (16, 8, 8, 2)).astype(np.float32)
    x[5, 2, 2, 1] = np.nan
    x[9, 0, 0, 0] = np.inf
    ids = [f"s{i:02d}" for i in range(16)]
    write_samples(work["samples"], x, ids, assign_split(16, 0.25, 0))
    Provenance("test").write(work["samples"], "csm.samples")
    out = work["res"] / "m"
    if stage == "encode":
        from concept_saliency.stages.encode import encode as fn

        kwargs = dict(encoder=str(work["good"]), latents=str(out / "latents.h5"))
    elif stage == "train":
        from concept_saliency.stages.train import train as fn

        model = out / "model"
        kwargs = dict(vae=str(model / "vae.keras"), encoder=str(model / "encoder.keras"),
                      history=str(model / "history.csv"),
                      preset="demo-shapes", epochs=1, batch_size=8, seed=0,
                      checkpoint_dir=str(model / "checkpoint"))
    else:
        from concept_saliency.stages.saliency import saliency as fn

        vectors = out / "concepts" / "concepts.h5"
        write_concepts(vectors, [Concept("c", "attribute", np.ones(3), np.zeros(16, bool))],
                       np.zeros((16, 1)), {"c": np.array([0, 5, 9])}, ids)
        Provenance("test").write(vectors, "csm.concepts")
        kwargs = dict(encoder=str(work["good"]), concepts=str(vectors),
                      maps=str(out / "saliency" / "vanilla_gradient.h5"),
                      method="vanilla_gradient", options={})
    with user_error(str(work["samples"]), "NaN", "2 sample(s)", "s05, s09", error=InputDataError) as refusal:
        fn(samples=str(work["samples"]), **kwargs)
    message = refusal.message
    assert "rerun the stage that packed them" in message
    written = [p for p in out.rglob("*") if p.is_file() and "concepts" not in p.parts]
    assert not written
    assert_no_partial_artifacts(work["root"])


@pytest.mark.parametrize("damage", ["truncated", "zeroed", "untagged"])
def test_a_damaged_intermediate_store_is_refused_with_what_to_do(work, damage):
    """A samples.h5 cut short (a disk full, a copy interrupted), overwritten, or not ours."""
    import h5py

    from concept_saliency.errors import ArtifactError
    from concept_saliency.stages.encode import encode

    path = work["samples"]
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 3])
    elif damage == "zeroed":
        path.write_bytes(bytes(len(data)))
    else:
        with h5py.File(path, "w") as f:
            f.create_dataset("x", data=np.zeros((2, 8, 8, 2), np.float32))
    latents = work["res"] / "m" / "latents.h5"
    with user_error(str(path), "rerun the stage that makes it", error=ArtifactError):
        encode(samples=str(path), encoder=str(work["good"]), latents=str(latents))
    assert not latents.exists()
