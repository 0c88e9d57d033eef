"""Attribution methods: checked against finite differences, axioms and a numpy reference."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, tiny_encoder
from numpy_reference import score_and_gradient

from concept_saliency.errors import ConfigError
from concept_saliency.saliency import METHODS, IntegratedGradients, attribute, get_method


@pytest.fixture
def float64():
    import keras

    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")  # Keras caches the policy it derived from floatx
    yield
    keras.config.set_floatx("float32")
    keras.config.set_dtype_policy("float32")


def _scores(model, x, c):
    from concept_saliency.model import latent_model

    return np.asarray(latent_model(model)(x, training=False)) @ c


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_vanilla_gradient_equals_central_finite_differences(float64, rng, activation):
    model = tiny_encoder(activation=activation, seed=3)
    c = rng.normal(size=3)
    x = rng.normal(size=(2, 8, 8, 2))
    grad = attribute(model, c, x, "vanilla_gradient")
    assert grad.dtype == np.float64
    eps = 1e-6
    fd = np.zeros_like(x)
    for i in np.ndindex(x.shape[1:]):
        step = np.zeros_like(x)
        step[(slice(None), *i)] = eps
        fd[(slice(None), *i)] = (_scores(model, x + step, c) - _scores(model, x - step, c)) / (2 * eps)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-7 * np.abs(fd).max())
    # and the gradient is not trivially zero
    assert np.abs(grad).max() > 1e-3


@pytest.fixture(scope="module")
def trained_vae():
    """A small VAE trained for a few seconds on 16x16 shapes: a realistic ReLU encoder."""
    import keras

    from concept_saliency.data.synthetic import make_shapes
    from concept_saliency.model import ArchitecturePreset, build_vae

    data = make_shapes(512, size=16, seed=0)
    x = data.images.astype("float32") / 255
    keras.utils.set_random_seed(0)
    vae = build_vae(ArchitecturePreset("tiny", (8, 16), (3, 3), (16,), 4, 1e-4, 3e-3), (16, 16, 3), seed=0)
    vae.compile(optimizer=keras.optimizers.Adam(3e-3))
    vae.fit(x, batch_size=32, epochs=3, verbose=0)
    z = np.asarray(vae.encoder(x)[0])
    c = z[data.labels[:, 0]].mean(0) - z[~data.labels[:, 0]].mean(0)
    return vae.encoder, c, x


def test_integrated_gradients_converges_to_completeness_on_a_relu_encoder(trained_vae):
    """Sum of attributions -> s(x) - s(0) as steps grow (1% at 64 steps: see test_workflow)."""
    encoder, c, x = trained_vae
    x = x[:32]
    delta = _scores(encoder, x, c) - _scores(encoder, np.zeros_like(x), c)
    errors = []
    for steps in (8, 32, 256):
        total = IntegratedGradients(encoder, c).attribute(x, steps=steps).reshape(len(x), -1).sum(axis=1)
        errors.append(np.abs(total - delta).sum() / np.abs(delta).sum())
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.01
    # the path is far from linear: gradient x input misses by much more
    gxi = attribute(encoder, c, x, "gradient_x_input").reshape(len(x), -1).sum(axis=1)
    assert np.abs(gxi - delta).sum() > 0.1 * np.abs(delta).sum()


def test_integrated_gradients_is_exact_on_a_smooth_network(rng):
    model = tiny_encoder(seed=5, activation="tanh")
    c = rng.normal(size=3).astype(np.float32)
    x = rng.normal(size=(4, 8, 8, 2)).astype(np.float32)
    maps = IntegratedGradients(model, c).attribute(x, steps=64)
    delta = _scores(model, x, c) - _scores(model, np.zeros_like(x), c)
    np.testing.assert_allclose(maps.reshape(len(x), -1).sum(axis=1), delta, rtol=1e-3, atol=1e-5)


def test_integrated_gradients_with_a_nonzero_baseline_is_complete_too(rng):
    model = tiny_encoder(seed=6, activation="tanh")
    c = rng.normal(size=3).astype(np.float32)
    x = rng.normal(size=(3, 8, 8, 2)).astype(np.float32)
    maps = attribute(model, c, x, "integrated_gradients", steps=64, baseline=0.5)
    delta = _scores(model, x, c) - _scores(model, np.full_like(x, 0.5), c)
    np.testing.assert_allclose(maps.reshape(3, -1).sum(axis=1), delta, rtol=0.01)


@pytest.mark.parametrize("method,rule", [("vanilla_gradient", "gradient"),
                                         ("guided_backprop", "guided"),
                                         ("deconvnet", "deconvnet")])
@pytest.mark.parametrize("fused", [False, True])
def test_backward_rules_match_an_independent_numpy_network(float64, rng, method, rule, fused):
    model = tiny_encoder(seed=7, fused=fused)
    c = rng.normal(size=3)
    x = rng.normal(size=(3, 8, 8, 2))
    maps = attribute(model, c, x, method)
    for i in range(len(x)):
        score, ref = score_and_gradient(model, x[i], c, rule)
        np.testing.assert_allclose(maps[i], ref, rtol=1e-9, atol=1e-12)
        assert np.isclose(score, _scores(model, x[i:i + 1], c)[0])
    if rule != "gradient":  # the rule really differs from the plain gradient here
        plain = attribute(model, c, x, "vanilla_gradient")
        assert not np.allclose(maps, plain)


def test_modified_rules_leave_the_users_model_untouched(rng):
    import keras

    model = tiny_encoder(seed=8, fused=True)
    x = rng.normal(size=(2, 8, 8, 2)).astype(np.float32)
    before = [np.asarray(o) for o in model(x)]
    conv = model.layers[1]
    attribute(model, np.ones(3), x, "guided_backprop")
    assert conv.activation is keras.activations.relu
    for a, b in zip(before, model(x)):
        np.testing.assert_array_equal(a, np.asarray(b))


@pytest.mark.parametrize("method", sorted(METHODS))
def test_batched_maps_equal_one_sample_at_a_time(rng, method):
    model = tiny_encoder(seed=9)
    vectors = rng.normal(size=(2, 3)).astype(np.float32)
    x = rng.normal(size=(5, 8, 8, 2)).astype(np.float32)
    concepts = np.array([0, 1, 1, 0, 1])
    options = {"smoothgrad": {"samples": 6}, "integrated_gradients": {"steps": 16}}.get(method, {})
    explainer = get_method(method)(model, vectors, chunk_size=7)  # chunks cut across samples
    batched = explainer.attribute(x, concept=concepts, **options)
    for i in range(len(x)):
        single = explainer.attribute(x[i:i + 1], concept=concepts[i], **options)
        np.testing.assert_allclose(batched[i], single[0], rtol=1e-4, atol=1e-6)


def test_gradient_x_input_is_input_times_gradient(rng):
    model = tiny_encoder(seed=10)
    c = rng.normal(size=3).astype(np.float32)
    x = rng.normal(size=(2, 8, 8, 2)).astype(np.float32)
    np.testing.assert_allclose(attribute(model, c, x, "gradient_x_input"),
                               x * attribute(model, c, x, "vanilla_gradient"), rtol=1e-6)


def test_smoothgrad_without_noise_is_the_gradient(rng):
    model = tiny_encoder(seed=11)
    c = rng.normal(size=3).astype(np.float32)
    x = rng.normal(size=(2, 8, 8, 2)).astype(np.float32)
    np.testing.assert_allclose(attribute(model, c, x, "smoothgrad", samples=4, noise_level=0.0),
                               attribute(model, c, x, "vanilla_gradient"), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("method,options,message", [
    ("integrated_gradients", {"stepz": 3}, "unknown option(s) stepz"),
    ("integrated_gradients", {"steps": 1}, "option 'steps'"),
    ("smoothgrad", {"samples": True}, "option 'samples'"),
    ("vanilla_gradient", {"steps": 3}, "its options are: none"),
])
def test_bad_options_name_the_method_and_option(method, options, message):
    with pytest.raises(ConfigError, match="saliency method '" + method) as info:
        get_method(method).validate_options(options)
    assert message in str(info.value)


def test_unknown_method_and_wrong_latent_size_are_clear_errors(rng):
    with pytest.raises(ConfigError, match="unknown saliency method 'occlusionn'"):
        get_method("occlusionn")
    with pytest.raises(ConfigError, match="4 dimensions but the model's latent"):
        attribute(tiny_encoder(), np.ones(4), np.zeros((1, 8, 8, 2)), "vanilla_gradient")


def test_tensorflow_and_jax_backends_give_the_same_maps(tmp_path, rng):
    """The same weights and inputs on both backends (JAX in a subprocess)."""
    pytest.importorskip("jax")
    model = tiny_encoder(seed=12)
    model.save(tmp_path / "enc.keras")
    c = rng.normal(size=(2, 3)).astype(np.float32)
    x = rng.normal(size=(3, 8, 8, 2)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "c.npy", c)
    options = {"smoothgrad": {"samples": 4}, "integrated_gradients": {"steps": 8}}
    script = f"""
import json, numpy as np
from concept_saliency.model import load_model
from concept_saliency.saliency import METHODS, attribute
m = load_model({str(tmp_path / 'enc.keras')!r})
x = np.load({str(tmp_path / 'x.npy')!r}); c = np.load({str(tmp_path / 'c.npy')!r})
opts = json.loads({json.dumps(json.dumps(options))})
np.savez({str(tmp_path / 'jax.npz')!r}, **{{k: attribute(m, c, x, k, concept=[0, 1, 1], **opts.get(k, {{}}))
                                         for k in METHODS}})
"""
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    jax_maps = np.load(tmp_path / "jax.npz")
    from concept_saliency.model import load_model

    loaded = load_model(tmp_path / "enc.keras")
    for method in METHODS:
        tf_map = attribute(loaded, c, x, method, concept=[0, 1, 1], **options.get(method, {}))
        scale = np.abs(tf_map).max()
        assert scale > 0
        np.testing.assert_allclose(jax_maps[method], tf_map, rtol=1e-4, atol=1e-4 * scale,
                                   err_msg=method)
