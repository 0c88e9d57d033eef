"""The phase-decomposed input gradient of strided convolutions (TensorFlow backend)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from concept_saliency.saliency import strided_conv
from concept_saliency.saliency.autodiff import ScoreGradient

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="the phase route exists on the TensorFlow backend only")


def _tf_input_gradient(x, kernel, dy, stride, padding):
    import tensorflow as tf

    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.nn.conv2d(x, kernel, stride, padding.upper())
    return tape.gradient(y, x, output_gradients=tf.constant(dy)).numpy()


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("kernel,stride", [(1, 2), (2, 2), (3, 2), (4, 2), (5, 2), (7, 2),
                                           (2, 3), (3, 3), (5, 3), (6, 3)])
def test_input_gradients_equal_tensorflows_for_every_kernel_stride_and_padding(rng, kernel, stride, padding):
    import tensorflow as tf

    n = 4 * stride if kernel <= 4 * stride else 6 * stride
    x = rng.normal(size=(2, n, 2 * n, 3))  # rectangular: rows and columns are handled apart
    w = rng.normal(size=(kernel, kernel + (stride > 2), 3, 5))  # and non-square kernels
    y_shape = tf.nn.conv2d(x, w, stride, padding.upper()).shape
    dy = rng.normal(size=y_shape)
    expected = _tf_input_gradient(x, w, dy, stride, padding)
    got = strided_conv.input_gradient(tf.constant(dy), tf.constant(w), x.shape, stride, padding).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    merged = strided_conv.merged_input_gradient(tf.constant(dy), tf.constant(w), x.shape, stride, padding)
    np.testing.assert_allclose(merged.numpy(), expected, rtol=1e-10, atol=1e-12)
    assert np.abs(expected).max() > 0.1


def _strided_model(seed=0):
    """Every strided case the paper's encoder has: a 3x3/2 convolution from the 3-channel image
    (merged phases), 5x5/2 convolutions from 128 channels and a 2x2/2 one (non-overlapping
    patches), with fused and separate activations and batch norm."""
    from keras import layers

    keras.utils.set_random_seed(seed)
    inp = keras.Input((16, 16, 3))
    h = layers.Conv2D(strided_conv.MIN_CHANNELS, 3, strides=2, padding="same", activation="relu")(inp)
    h = layers.Conv2D(16, 5, strides=2, padding="same")(h)  # from 128 channels: the phase route
    h = layers.ReLU()(h)
    h = layers.BatchNormalization()(h)
    h = layers.Conv2D(strided_conv.MIN_CHANNELS, 1, activation="tanh")(h)
    h = layers.Conv2D(8, 2, strides=2, padding="valid", activation="relu")(h)  # patches
    h = layers.Flatten()(h)
    z = layers.Dense(4, name="z_mean")(layers.Dense(6, activation="relu")(h))
    model = keras.Model(inp, z)
    bn = model.layers[4]
    bn.moving_mean.assign(np.random.default_rng(seed).normal(0, 0.3, bn.moving_mean.shape))
    return model


def _conv_layer(**kwargs):
    conv = keras.layers.Conv2D(4, 3, **{"strides": 2, **kwargs})
    conv.build((None, 16, 16, 128))
    return conv


def test_the_paper_encoders_strided_convolutions_take_the_phase_route():
    from concept_saliency.model import build_encoder, get_preset

    encoder = build_encoder(get_preset("paper-celeba"), (128, 128, 3))
    routed = [layer.name for layer in encoder.layers if isinstance(layer, keras.layers.Conv2D)
              and strided_conv.accelerates(layer, tuple(layer.input.shape))]
    assert routed == ["enc_conv1", "enc_conv3", "enc_conv4", "enc_conv5"]  # 3 (merged), 128, 256, 512 in
    mixed = _conv_layer(dtype="mixed_bfloat16")
    assert not strided_conv.accelerates(mixed, (None, 16, 16, 128))  # mixed precision: Keras' call
    assert strided_conv.accelerates(_conv_layer(), (None, 16, 16, 128))
    assert not strided_conv.accelerates(_conv_layer(), (None, 16, 16, 64))  # neither few nor many
    assert strided_conv.accelerates(_conv_layer(), (None, 16, 16, strided_conv.MAX_MERGED_CHANNELS))
    assert not strided_conv.accelerates(_conv_layer(strides=1), (None, 16, 16, 128))
    assert not strided_conv.accelerates(_conv_layer(dilation_rate=2, strides=1), (None, 16, 16, 128))
    assert not strided_conv.accelerates(_conv_layer(), (None, 15, 16, 128))  # not a stride multiple


@pytest.mark.parametrize("rule", ["gradient", "guided", "deconvnet", "rectgrad", "epsilon", "rescale"])
def test_every_rule_gives_the_same_maps_with_and_without_the_phase_route(monkeypatch, rng, rule):
    x = rng.random((5, 16, 16, 3)).astype(np.float32)
    c = rng.normal(size=(5, 4)).astype(np.float32)
    ref = np.full_like(x, 0.2)
    param = 80.0 if rule == "rectgrad" else 1e-3
    model, twin = _strided_model(), _strided_model()
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    routed_layers = [layer for layer in convs if strided_conv.accelerates(layer, tuple(layer.input.shape))]
    assert routed_layers == [convs[0], convs[1], convs[3]]  # the first, the 5x5 and the 2x2 convolution
    routed = ScoreGradient(model, rule)(x, c, ref, param)
    monkeypatch.setattr(strided_conv, "accelerates", lambda layer, shape: False)
    plain = ScoreGradient(twin, rule)(x, c, ref, param)  # TensorFlow's own gradients throughout
    np.testing.assert_allclose(routed[0], plain[0], rtol=1e-6)
    np.testing.assert_allclose(routed[1], plain[1], rtol=2e-4, atol=2e-6 * np.abs(plain[1]).max())
    assert np.abs(plain[1]).max() > 1e-3


def test_kept_phase_kernels_follow_weights_re_assigned_in_place(rng):
    """The sub-kernels are kept between calls but remade when the kernel changes (a
    randomisation check re-assigns weights under compiled functions)."""
    import tensorflow as tf

    model = _strided_model(seed=3)
    x = rng.random((2, 16, 16, 3)).astype(np.float32)
    c = rng.normal(size=(2, 4)).astype(np.float32)
    engine = ScoreGradient(model)

    def tf_gradient():
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            s = tf.reduce_sum(model(xt, training=False) * c, axis=1)
        return tape.gradient(s, xt).numpy()

    before = engine(x, c)[1]
    np.testing.assert_allclose(before, tf_gradient(), rtol=2e-4, atol=1e-6 * np.abs(before).max())
    conv = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)][1]
    conv.kernel.assign(rng.normal(size=conv.kernel.shape).astype(np.float32))
    after = engine(x, c)[1]
    assert not np.allclose(after, before, rtol=1e-2)
    np.testing.assert_allclose(after, tf_gradient(), rtol=2e-4, atol=1e-6 * np.abs(after).max())
    np.testing.assert_allclose(engine(x, c)[1], after, rtol=1e-6)  # and kept again
