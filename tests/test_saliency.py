"""Attribution methods: checked against finite differences, axioms and a numpy reference."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import REPO, tiny_encoder
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
@pytest.mark.parametrize("route", ["tf-gradient", "phase-route", "merged-route"])
def test_vanilla_gradient_equals_central_finite_differences(float64, rng, monkeypatch, activation, route):
    import keras

    from concept_saliency.saliency import strided_conv

    model = tiny_encoder(activation=activation, seed=3)  # a strided convolution from 2 channels
    # the strided convolution's input gradient by TensorFlow, strided_conv's phases, or its merged phases
    monkeypatch.setattr(strided_conv, "MIN_CHANNELS", 1 if route == "phase-route" else 128)
    monkeypatch.setattr(strided_conv, "MAX_MERGED_CHANNELS", 2 if route == "merged-route" else 0)
    if keras.backend.backend() == "tensorflow":
        assert strided_conv.accelerates(model.layers[1], tuple(model.layers[1].input.shape)) == (
            route != "tf-gradient")
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


# method, numpy rule, options, rule parameter, map from (x, modified gradient)
RULE_CASES = [
    ("vanilla_gradient", "gradient", {}, None, lambda x, g: g),
    ("guided_backprop", "guided", {}, None, lambda x, g: g),
    ("deconvnet", "deconvnet", {}, None, lambda x, g: g),
    ("rectgrad", "rectgrad", {}, 95, lambda x, g: x * g),
    ("rectgrad", "rectgrad", {"percentile": 60}, 60, lambda x, g: x * g),
    ("epsilon_lrp", "epsilon", {"epsilon": 0.05}, 0.05, lambda x, g: x * g),
    ("deeplift", "rescale", {"baseline": 0.3}, None, lambda x, g: (x - 0.3) * g),
]


@pytest.mark.parametrize("method,rule,options,param,to_map", RULE_CASES,
                         ids=[f"{c[0]}-{c[3]}" for c in RULE_CASES])
@pytest.mark.parametrize("fused", [False, True])
def test_backward_rules_match_an_independent_numpy_network(float64, rng, method, rule, options, param,
                                                          to_map, fused):
    model = tiny_encoder(seed=7, fused=fused)
    c = rng.normal(size=3)
    x = rng.normal(size=(3, 8, 8, 2))
    maps = attribute(model, c, x, method, **options)
    for i in range(len(x)):
        score, ref = score_and_gradient(model, x[i], c, rule, param=param,
                                        reference=np.full_like(x[i], 0.3))
        np.testing.assert_allclose(maps[i], to_map(x[i], ref), rtol=1e-9, atol=1e-12)
        assert np.isclose(score, _scores(model, x[i:i + 1], c)[0])
    if rule != "gradient":  # the rule really differs from the plain gradient (times the input) here
        plain = attribute(model, c, x, "vanilla_gradient")
        assert not np.allclose(maps, to_map(x, plain), rtol=1e-3, atol=1e-6)
    assert np.abs(maps).max() > 1e-3


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
    options = {"smoothgrad": {"samples": 6}, "integrated_gradients": {"steps": 16},
               "occlusion": {"window": 3, "stride": 2}, "deeplift": {"baseline": "mean"}}.get(method, {})
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
    """The same weights and inputs on both backends (JAX in a subprocess), every method."""
    if not os.environ.get("CI"):  # CI installs jax (the test extra): there it must run
        pytest.importorskip("jax")
    model = tiny_encoder(seed=12)
    model.save(tmp_path / "enc.keras")
    c = rng.normal(size=(2, 3)).astype(np.float32)
    x = rng.normal(size=(3, 8, 8, 2)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "c.npy", c)
    options = {"smoothgrad": {"samples": 4}, "integrated_gradients": {"steps": 8},
               "occlusion": {"window": 3, "stride": 2}, "rectgrad": {"percentile": 80},
               "deeplift": {"baseline": 0.2}, "epsilon_lrp": {"epsilon": 0.01}}
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


# ---------------------------------------------------------------- axioms of the new methods


def layer_zoo(pool="avg", seed=0, shape=(12, 12, 2)):
    """An encoder of many layer kinds: residual Add, Concatenate, a nested Sequential, pooling,
    Reshape, Dropout, LeakyReLU/ELU/tanh, fused activations, batch norm."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inp = keras.Input(shape)
    h = layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    h = layers.BatchNormalization()(h)
    r = layers.Conv2D(4, 3, padding="same")(h)
    r = layers.LeakyReLU(0.1)(r)
    h = layers.Add()([h, r])
    h = (layers.AveragePooling2D(2) if pool == "avg" else layers.MaxPooling2D(2))(h)
    block = keras.Sequential([layers.Conv2D(3, 1, activation="elu"), layers.Dropout(0.5)])
    h = layers.Concatenate()([h, block(h)])
    h = layers.ZeroPadding2D(1)(h)
    h = layers.Conv2D(4, 3, strides=2, activation="tanh")(h)
    h = layers.Reshape((-1,))(h)
    h = layers.Dense(5)(h)
    h = layers.ReLU()(h)
    z = layers.Dense(3, name="z_mean")(h)
    model = keras.Model(inp, z, name="zoo")
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.3, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, layer.moving_variance.shape))
    return model


@pytest.mark.parametrize("baseline", ["zeros", 0.5, "mean"])
def test_deeplift_sums_exactly_to_the_score_difference(float64, rng, baseline):
    """Summation to delta: sum of the map = s(x) - s(baseline), for a ReLU encoder with batch norm
    and for a network of many layer kinds and nonlinearities (tanh, ELU, leaky ReLU)."""
    from concept_saliency.saliency.methods import _baseline

    for model in (tiny_encoder(seed=13), layer_zoo("avg", seed=13)):
        x = rng.normal(size=(4, *model.inputs[0].shape[1:]))
        c = rng.normal(size=3)
        maps = attribute(model, c, x, "deeplift", baseline=baseline)
        ref = _baseline(x, baseline)
        delta = _scores(model, x, c) - _scores(model, ref, c)
        np.testing.assert_allclose(maps.reshape(len(x), -1).sum(axis=1), delta, rtol=1e-9,
                                   atol=1e-12 * np.abs(delta).max())
        # not trivially gradient x (x - baseline), which misses the delta
        gxi = (x - ref) * attribute(model, c, x, "vanilla_gradient")
        assert np.abs(gxi.reshape(len(x), -1).sum(axis=1) - delta).max() > 1e-3 * np.abs(delta).max()


def test_deeplift_is_within_float32_rounding_of_the_delta(rng):
    model = tiny_encoder(seed=14)
    x = rng.normal(size=(6, 8, 8, 2)).astype(np.float32)
    c = rng.normal(size=3).astype(np.float32)
    maps = attribute(model, c, x, "deeplift")
    delta = _scores(model, x, c) - _scores(model, np.zeros_like(x), c)
    np.testing.assert_allclose(maps.reshape(6, -1).sum(axis=1), delta, rtol=1e-4, atol=1e-5)


def test_epsilon_lrp_conserves_relevance_as_epsilon_vanishes(float64, rng):
    """Bias-free ReLU network: sum of relevances -> s(x) as epsilon -> 0; epsilon absorbs some."""
    model = tiny_encoder(seed=15, fused=True, bias=False)
    x = rng.normal(size=(4, 8, 8, 2))
    c = rng.normal(size=3)
    s = _scores(model, x, c)
    errors = []
    for eps in (1.0, 1e-2, 1e-4, 1e-8):
        total = attribute(model, c, x, "epsilon_lrp", epsilon=eps).reshape(len(x), -1).sum(axis=1)
        errors.append(np.abs(total - s).max() / np.abs(s).max())
    assert errors[0] > 0.01, errors  # a large epsilon really absorbs relevance
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-7, errors
    # with biases (and batch norm), relevance is not conserved even as epsilon -> 0
    biased = tiny_encoder(seed=15)
    sb = _scores(biased, x, c)
    total = attribute(biased, c, x, "epsilon_lrp", epsilon=1e-8).reshape(len(x), -1).sum(axis=1)
    assert np.abs(total - sb).max() > 1e-3 * np.abs(sb).max()


def test_occlusion_matches_a_plain_loop_over_windows(float64, rng):
    model = tiny_encoder(seed=16)
    x = rng.normal(size=(2, 8, 8, 2))
    c = rng.normal(size=3)
    maps = attribute(model, c, x, "occlusion", window=3, stride=2, fill_value=0.5, chunk_size=5)
    heat = np.zeros((2, 8, 8))
    count = np.zeros((8, 8))
    base = _scores(model, x, c)
    for i in (0, 2, 4, 5):  # window corners: stride 2, plus one flush with the far edge
        for j in (0, 2, 4, 5):
            occluded = x.copy()
            occluded[:, i:i + 3, j:j + 3, :] = 0.5
            heat[:, i:i + 3, j:j + 3] += ((base - _scores(model, occluded, c)) / 9)[:, None, None]
            count[i:i + 3, j:j + 3] += 1
    expected = np.repeat((heat / count)[..., None], 2, axis=-1) / 2
    np.testing.assert_allclose(maps, expected, rtol=1e-9, atol=1e-12)
    # non-overlapping windows: the map sums to the total score drop of the windows
    tiles = attribute(model, c, x, "occlusion", window=4, stride=4)
    drops = 0
    for i in (0, 4):
        for j in (0, 4):
            occluded = x.copy()
            occluded[:, i:i + 4, j:j + 4, :] = 0
            drops = drops + base - _scores(model, occluded, c)
    np.testing.assert_allclose(tiles.reshape(2, -1).sum(axis=1), drops, rtol=1e-9)


@pytest.mark.parametrize("pool", ["avg", "max"])
def test_every_method_runs_on_many_layer_kinds_and_leaves_the_model_untouched(rng, pool):
    model = layer_zoo(pool, seed=17)
    x = rng.normal(size=(2, 12, 12, 2)).astype(np.float32)
    weights = [w.copy() for w in model.get_weights()]
    activations = {l.name: getattr(l, "activation", None) for l in model.layers}
    before = np.asarray(model(x))
    options = {"occlusion": {"window": 4, "stride": 4}, "smoothgrad": {"samples": 4},
               "integrated_gradients": {"steps": 8}}
    plain = attribute(model, np.ones(3), x, "vanilla_gradient")
    for method in METHODS:
        maps = attribute(model, np.ones(3), x, method, **options.get(method, {}))
        assert maps.shape == x.shape and np.isfinite(maps).all() and np.abs(maps).max() > 0, method
        if method in ("guided_backprop", "deconvnet"):
            assert not np.allclose(maps, plain), method
    for a, b in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert {l.name: getattr(l, "activation", None) for l in model.layers} == activations
    np.testing.assert_array_equal(before, np.asarray(model(x)))


def test_epsilon_lrp_with_a_tiny_epsilon_is_gradient_x_input_on_relu_networks(float64, rng):
    """On ReLU networks f(u)/u = f'(u): a check that the walk passes every other layer's gradient."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(18)
    inp = keras.Input((12, 12, 2))
    h = layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    h = layers.MaxPooling2D(2)(h)
    r = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(4, 3, padding="same")(h)))
    h = layers.Concatenate()([layers.Add()([h, r]), keras.Sequential([layers.Conv2D(2, 1, activation="relu")])(h)])
    h = layers.GlobalAveragePooling2D()(h)
    z = layers.Dense(3, name="z_mean")(layers.Dense(5, activation="relu")(h))
    model = keras.Model(inp, z)
    x = rng.normal(size=(3, 12, 12, 2))
    c = rng.normal(size=3)
    np.testing.assert_allclose(attribute(model, c, x, "epsilon_lrp", epsilon=1e-12),
                               attribute(model, c, x, "gradient_x_input"), rtol=1e-7, atol=1e-12)


def test_unsupported_layers_are_named_for_modified_rules_only(rng):
    import keras
    from keras import layers

    inp = keras.Input((8, 8, 2))
    h = layers.Conv2D(3, 3, activation="relu")(inp)
    h = layers.LayerNormalization(name="my_norm")(h)
    z = layers.Dense(3)(layers.Flatten()(h))
    model = keras.Model(inp, z)
    x = rng.normal(size=(1, 8, 8, 2)).astype(np.float32)
    for method in ("guided_backprop", "deconvnet", "rectgrad", "epsilon_lrp", "deeplift"):
        with pytest.raises(ConfigError, match=f"'{method}': layer 'my_norm' \\(LayerNormalization\\)") as info:
            attribute(model, np.ones(3), x, method)
        assert ("use one of vanilla_gradient, gradient_x_input, smoothgrad, integrated_gradients, occlusion "
                "for this model") in str(info.value)
    for method in ("vanilla_gradient", "integrated_gradients", "occlusion"):  # autodiff copes
        assert np.isfinite(attribute(model, np.ones(3), x, method)).all()
    soft = keras.Model(inp, layers.Dense(3, activation="softmax", name="probs")(layers.Flatten()(inp)))
    with pytest.raises(ConfigError, match="layer 'probs'.*'softmax', which is not elementwise"):
        attribute(soft, np.ones(3), x, "deeplift")


def test_each_model_shape_and_rule_is_traced_once(rng):
    """New explainers, other options (epsilon, percentile) and batch sizes reuse one program."""
    from concept_saliency.model import latent_model
    from concept_saliency.saliency.autodiff import _COMPILED

    model = tiny_encoder(seed=19)
    x = rng.normal(size=(5, 8, 8, 2)).astype(np.float32)
    for n, eps in ((5, 0.1), (3, 0.01), (1, 1.0)):
        attribute(model, np.ones(3), x[:n], "epsilon_lrp", epsilon=eps)
        attribute(model, np.ones(3), x[:n], "rectgrad", percentile=50 + n)
        attribute(model, np.ones(3), x[:n], "vanilla_gradient")
    compiled = _COMPILED[latent_model(model)]
    assert sorted(k[1] for k in compiled) == ["epsilon", "gradient", "rectgrad"]
    for fn in compiled.values():
        assert fn.traces() == 1


def test_integrated_gradients_split_into_chunks_equal_one_call(rng):
    """Paths longer than a chunk are split into groups of steps; the groups sum to the same maps
    (and the path program is traced once for every batch and group size)."""
    from concept_saliency.model import latent_model
    from concept_saliency.saliency.autodiff import _COMPILED

    model = tiny_encoder(seed=23)
    x = rng.normal(size=(3, 8, 8, 2)).astype(np.float32)
    whole = IntegratedGradients(model, np.ones(3), chunk_size=64).attribute(x, steps=20, integration="trapezoid")
    split = IntegratedGradients(model, np.ones(3), chunk_size=6).attribute(  # 6 + 6 + 6 + 2
        x, steps=20, integration="trapezoid")
    np.testing.assert_allclose(split, whole, rtol=1e-5, atol=1e-6 * np.abs(whole).max())
    assert np.abs(whole).max() > 1e-3
    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        path = [fn for key, fn in _COMPILED[latent_model(model)].items() if key[0] == "path"]
        assert len(path) == 1 and path[0].traces() == 1


# ---------------------------------------------------------------- plumbing


def test_chunks_keep_row_order_and_pad_only_a_short_last_chunk_of_several():
    from concept_saliency.saliency.batching import chunks, map_chunks, sum_chunks

    x = np.arange(7.0)[:, None] * np.ones((1, 2))
    labels = np.arange(7) + 10
    seen = []

    def double(a, b):
        seen.append((len(a), a[:, 0].tolist(), b.tolist()))
        return 2 * a, None, b

    doubled, none, same = map_chunks(double, (x, labels), 3, pad=True)
    np.testing.assert_array_equal(doubled, 2 * x)
    np.testing.assert_array_equal(same, labels)
    assert none is None
    # three chunks of 3 rows; the last one holds row 6 then two zero rows
    assert seen == [(3, [0, 1, 2], [10, 11, 12]), (3, [3, 4, 5], [13, 14, 15]), (3, [6, 0, 0], [16, 0, 0])]
    assert [len(c[0]) for _, c in chunks((x,), 3)] == [3, 3, 1]  # no padding asked for
    assert [len(c[0]) for _, c in chunks((np.arange(10),), 4)] == [4, 4, 2]
    assert [len(c[0]) for _, c in chunks((np.arange(136),), 64)] == [46, 46, 44]  # shared evenly
    assert [rows for rows, c in chunks((x,), 3, pad=True)] == [3, 3, 1]
    assert [len(c[0]) for _, c in chunks((x[:2],), 3, pad=True)] == [2]  # a single chunk is not padded
    assert sum_chunks(lambda a: a.sum(), (x,), 3, pad=True) == x.sum()
    with pytest.raises(ValueError, match="different lengths"):
        next(chunks((x, labels[:5]), 3))
    with pytest.raises(ValueError, match=">= 1"):
        next(chunks((x,), 0))


def test_a_method_is_one_class(rng):
    """A subclass with a name and a rule is registered and runs through every entry point."""
    from concept_saliency.saliency import methods
    from concept_saliency.saliency.rules import DECONVNET

    class PositiveInputGradient(methods.ConceptAttribution):
        """Deconvnet's gradient times the input (a test method)."""

        name = "test_positive_input_gradient"
        rule = DECONVNET

        def _attribute(self, x, c):
            return x * self.gradient(x, c)[1]

    try:
        model = tiny_encoder(seed=24)
        x = rng.normal(size=(3, 8, 8, 2)).astype(np.float32)
        assert get_method("test_positive_input_gradient") is PositiveInputGradient
        maps = attribute(model, np.ones(3), x, "test_positive_input_gradient")
        np.testing.assert_allclose(maps, x * attribute(model, np.ones(3), x, "deconvnet"), rtol=1e-6)
        with pytest.raises(ValueError, match="two saliency methods are named 'deconvnet'"):
            type("Twice", (methods.ConceptAttribution,), {"name": "deconvnet"})
    finally:
        del METHODS["test_positive_input_gradient"]


# ---------------------------------------------------------------- integration rules


def test_fixed_integration_rules_are_exact_on_polynomials_of_their_degree():
    from concept_saliency.saliency.paths import path_points

    def integral(rule, steps, degree):  # of alpha ** degree over [0, 1]: 1 / (degree + 1)
        alphas, weights = path_points(steps, rule)
        assert np.all((alphas >= 0) & (alphas <= 1)) and np.isclose(weights.sum(), 1)
        return weights @ alphas ** degree

    for rule in ("riemann_middle", "trapezoid"):
        assert np.isclose(integral(rule, 5, 1), 1 / 2, rtol=1e-14)
        assert not np.isclose(integral(rule, 5, 2), 1 / 3, rtol=1e-4)
    for steps in (2, 5, 16):
        degree = 2 * steps - 1
        assert np.isclose(integral("gausslegendre", steps, degree), 1 / (degree + 1), rtol=1e-12)
        if steps < 16:  # (the error at degree 2 steps shrinks fast with steps)
            assert not np.isclose(integral("gausslegendre", steps, degree + 1), 1 / (degree + 2), rtol=1e-9)


def _numpy_score(kind, w, t=0.0):
    """A score and its gradient in numpy, as ``adaptive_path_integral`` calls them: ``(w . x)^2``
    (a slope linear along any straight path) or ``relu(w . x - t)`` (one kink)."""

    def gradient(points, c):
        u = points.reshape(len(points), -1) @ w
        if kind == "square":
            return u ** 2, (2 * u)[:, None] * w[None, :]
        return np.maximum(u - t, 0), (u > t)[:, None] * w[None, :]

    return gradient


def test_adaptive_rule_is_exact_for_linear_slopes_and_bisects_towards_a_kink(rng):
    from concept_saliency.saliency.paths import adaptive_path_integral, path_points

    w = rng.normal(size=6)
    x = rng.normal(size=(3, 6))
    base = np.zeros_like(x)
    square = adaptive_path_integral(_numpy_score("square", w), x, base, np.zeros((3, 1)), 9)
    # the exact map of (w . x)^2 from 0: x * w * (w . x)
    np.testing.assert_allclose(square, x * w * (x @ w)[:, None], rtol=1e-12)

    # relu(w . x - t): the slope jumps once along the path, at a different place for each of 40 samples
    x = rng.normal(size=(40, 6))
    x = x * np.sign(x @ w)[:, None]  # (w . x > 0: the path crosses the kink)
    t = rng.uniform(0.05, 0.95, size=40) * (x @ w)
    jump = x @ w
    delta = jump - t
    for steps in (8, 16, 32):
        adaptive = np.concatenate([adaptive_path_integral(_numpy_score("relu", w, ti), xi[None], np.zeros((1, 6)),
                                                          np.zeros((1, 1)), steps) for xi, ti in zip(x, t)])
        alphas, weights = path_points(steps, "trapezoid")
        trapezoid = np.stack([xi * (weights @ _numpy_score("relu", w, ti)(alphas[:, None] * xi, None)[1])
                              for xi, ti in zip(x, t)])
        adaptive_error = np.abs(adaptive.sum(axis=1) - delta)
        trapezoid_error = np.abs(trapezoid.sum(axis=1) - delta)
        # the kink's cell (2 / steps wide at first) bisected in each of the three rounds: the error is
        # at most the jump times half the last cell; equal cells of 1 / (steps - 1) leave up to 4 times that
        assert np.all(adaptive_error <= jump * (2 / steps) / 8 / 2 * (1 + 1e-9)), steps
        assert adaptive_error.sum() < trapezoid_error.sum() / 2, steps
    # batched: each sample's cells are its own
    batched = adaptive_path_integral(_numpy_score("relu", w, 0.2), x, np.zeros_like(x), np.zeros((40, 1)), 16)
    for i in range(0, 40, 7):
        alone = adaptive_path_integral(_numpy_score("relu", w, 0.2), x[i:i + 1], np.zeros((1, 6)),
                                       np.zeros((1, 1)), 16)
        np.testing.assert_allclose(batched[i], alone[0], rtol=1e-12)


@pytest.mark.parametrize("baseline", ["zeros", "mean"])
def test_adaptive_integration_is_more_complete_than_the_midpoint_rule_on_a_trained_encoder(trained_vae, baseline):
    """The default rule: at every number of steps, a smaller completeness error than the old
    default's (benchmarks/integration.py: about the old one's with half the steps on the demo's
    and celeba-small's encoders)."""
    from concept_saliency.saliency.methods import _baseline

    encoder, c, x = trained_vae
    x = x[:32]
    delta = _scores(encoder, x, c) - _scores(encoder, _baseline(x, baseline), c)
    assert IntegratedGradients.validate_options({})["integration"] == "adaptive"
    explainer = IntegratedGradients(encoder, c)
    for steps in (16, 32, 64):
        err = {}
        for rule in ("adaptive", "riemann_middle"):
            maps = explainer.attribute(x, steps=steps, baseline=baseline, integration=rule)
            err[rule] = np.abs(maps.reshape(len(x), -1).sum(axis=1) - delta).sum() / np.abs(delta).sum()
        assert err["adaptive"] < err["riemann_middle"], (steps, err)
    assert err["adaptive"] < 0.01


def test_adaptive_integration_keeps_its_gradients_for_a_few_samples_at_a_time(rng):
    model = tiny_encoder(seed=25)
    x = rng.normal(size=(5, 8, 8, 2)).astype(np.float32)
    few = IntegratedGradients(model, np.ones(3), chunk_size=4).attribute(x, steps=12)  # 1 sample a group
    many = IntegratedGradients(model, np.ones(3), chunk_size=64).attribute(x, steps=12)
    np.testing.assert_allclose(few, many, rtol=1e-5, atol=1e-6 * np.abs(many).max())
    assert np.abs(many).max() > 1e-3


# ---------------------------------------------------------------- RectGrad's threshold and DeepLIFT's reference


@pytest.mark.parametrize("gpu_route", [False, True], ids=["partition", "top-k"])
def test_order_statistic_is_the_sorted_rows_value_with_ties(monkeypatch, rng, gpu_route):
    import keras

    from concept_saliency.saliency import rules, strided_conv

    if keras.backend.backend() == "tensorflow":  # (the top-k route is TensorFlow's on a GPU)
        monkeypatch.setattr(strided_conv, "tensorflow_sees_gpu", lambda: gpu_route)
    rows = rng.normal(size=(4, 101)).astype(np.float32) * (rng.random((4, 101)) > 0.5)  # many tied zeros
    rows[1, :60] = 0.5  # a long tie
    for index in (0, 3, 50, 59, 60, 97, 100):
        got = keras.ops.convert_to_numpy(rules.order_statistic(keras.ops.convert_to_tensor(rows),
                                                               keras.ops.convert_to_tensor(np.int32(index))))
        np.testing.assert_array_equal(got, np.sort(rows, axis=1)[:, index])


def test_percentile_position_is_numpys_where_it_is_a_whole_number():
    import keras

    from concept_saliency.saliency.rules import _floor_position

    for n, percentile in ((6, 80.0), (21, 95.0), (101, 60.0), (256, 80.0), (11, 30.0), (1, 95.0), (7, 0.0)):
        got = int(keras.ops.convert_to_numpy(_floor_position(n, keras.ops.convert_to_tensor(np.float64(percentile)))))
        assert got == int(np.floor((n - 1) * (percentile / 100))), (n, percentile)


def test_rectgrad_threshold_is_numpys_percentile_in_float32(rng):
    """Whole-number positions ((n - 1) * percentile / 100: the 6 units of the dense layer at 80) in a
    float32 model: the unit at the percentile is cut, as numpy's percentile cuts it."""
    model = tiny_encoder(seed=12)
    c = np.random.default_rng(5).normal(size=(2, 3)).astype(np.float32)
    x = np.random.default_rng(5).normal(size=(3, 8, 8, 2)).astype(np.float32)
    concept = [0, 1, 1]
    maps = attribute(model, c, x, "rectgrad", concept=concept, percentile=80)
    for i in range(3):
        ref = x[i] * score_and_gradient(model, x[i], c[concept[i]], "rectgrad", param=80)[1]
        np.testing.assert_allclose(maps[i], ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())


def test_deeplift_runs_a_shared_reference_once_and_per_sample_references_each():
    from concept_saliency.saliency.autodiff import _shared

    same = np.broadcast_to(np.full((1, 4, 4, 2), 0.3, np.float32), (5, 4, 4, 2))
    assert _shared(same).shape == (1, 4, 4, 2)
    assert _shared(np.ascontiguousarray(same)).shape == (1, 4, 4, 2)
    varied = np.ascontiguousarray(same).copy()
    varied[3, 0, 0, 0] = 0.31
    assert _shared(varied).shape == (5, 4, 4, 2)


def test_a_subclassed_model_is_refused_by_modified_rules_only(rng):
    import keras

    class Doubler(keras.Model):
        def __init__(self):
            super().__init__(name="doubler")
            self.dense = keras.layers.Dense(3)

        def call(self, x):
            return self.dense(keras.ops.reshape(x, (-1, 8)) * 2)

    from concept_saliency.saliency.graph import check_supported, forward
    from concept_saliency.saliency.rules import GRADIENT, GUIDED

    model = Doubler()
    x = rng.normal(size=(2, 2, 4)).astype(np.float32)
    model(x)
    check_supported(model, GRADIENT)  # the plain gradient differentiates any model
    with pytest.raises(ConfigError, match="'guided_backprop': model 'doubler' is a subclassed model"):
        check_supported(model, GUIDED, "guided_backprop")
    with pytest.raises(ConfigError, match="^model 'doubler' is a subclassed model"):
        forward(model, x, GUIDED)
