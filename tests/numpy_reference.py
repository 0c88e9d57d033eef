"""An independent numpy implementation of small sequential conv nets, forward and backward.

Used to check the library's modified backward rules (guided backprop,
deconvnet, RectGrad, epsilon-LRP, DeepLIFT's rescale) and plain gradients against code that shares nothing with it: no
Keras op, no autodiff. Supports the layers the tests' encoders use: Conv2D
('same' padding, any stride, optional fused ReLU), BatchNormalization
(inference), ReLU / Activation('relu'), Flatten and Dense. The network is read
from a Keras functional model by following its layers up to ``output_layer``.
"""

from __future__ import annotations

import math

import numpy as np


def _same_pad(size, k, s):
    out = math.ceil(size / s)
    total = max((out - 1) * s + k - size, 0)
    return out, total // 2, total - total // 2


def conv_forward(x, w, b, stride):
    kh, kw, cin, cout = w.shape
    oh, pt, pb = _same_pad(x.shape[0], kh, stride)
    ow, pl, pr = _same_pad(x.shape[1], kw, stride)
    xp = np.pad(x, ((pt, pb), (pl, pr), (0, 0)))
    out = np.zeros((oh, ow, cout))
    for i in range(oh):
        for j in range(ow):
            patch = xp[i * stride:i * stride + kh, j * stride:j * stride + kw]
            out[i, j] = np.tensordot(patch, w, axes=3) + b
    return out


def conv_backward(g, x, w, stride):
    kh, kw, cin, cout = w.shape
    oh, pt, pb = _same_pad(x.shape[0], kh, stride)
    ow, pl, pr = _same_pad(x.shape[1], kw, stride)
    gxp = np.zeros((x.shape[0] + pt + pb, x.shape[1] + pl + pr, cin))
    for i in range(oh):
        for j in range(ow):
            gxp[i * stride:i * stride + kh, j * stride:j * stride + kw] += np.tensordot(w, g[i, j], axes=([3], [0]))
    return gxp[pt:pt + x.shape[0], pl:pl + x.shape[1]]


def layers_to(model, output_layer: str):
    """The chain of layers from the input to ``output_layer`` (a sequential path)."""
    chain = []
    for layer in model.layers:
        if layer.__class__.__name__ == "InputLayer":
            continue
        chain.append(layer)
        if layer.name == output_layer:
            return chain
    raise ValueError(output_layer)


def _relu_rule(g, pre, rule, param=None, pre_ref=None):
    """The backward pass of a ReLU ``y = max(pre, 0)`` under each rule, written out in numpy."""
    post = np.maximum(pre, 0)
    if rule == "gradient":
        return g * (pre > 0)
    if rule == "guided":
        return g * (pre > 0) * (g > 0)
    if rule == "deconvnet":
        return np.maximum(g, 0)
    if rule == "rectgrad":  # pass where post * g exceeds its percentile over the layer
        importance = post * g
        return np.where(importance > np.percentile(importance, param), g, 0.0)
    if rule == "epsilon":
        return g * post / (pre + param * np.where(pre >= 0, 1.0, -1.0))
    if rule == "rescale":
        delta = pre - pre_ref
        far = np.abs(delta) > 1e-5
        secant = (post - np.maximum(pre_ref, 0)) / np.where(far, delta, 1.0)
        return g * np.where(far, secant, (pre + pre_ref) > 0)
    raise ValueError(rule)


def _forward(chain, x):
    tape = []  # (kind, saved values) to replay backwards
    h = np.asarray(x, dtype=np.float64)
    for layer in chain:
        kind = layer.__class__.__name__
        act = getattr(layer, "activation", None)
        act_name = getattr(act, "__name__", "linear")
        if kind == "Conv2D":
            w, b = (np.asarray(v, dtype=np.float64) for v in layer.get_weights()) if layer.use_bias else (
                np.asarray(layer.get_weights()[0], dtype=np.float64), 0.0)
            tape.append(("conv", h, w, layer.strides[0]))
            h = conv_forward(h, w, b, layer.strides[0])
        elif kind == "Dense":
            ws = layer.get_weights()
            w = np.asarray(ws[0], dtype=np.float64)
            b = np.asarray(ws[1], dtype=np.float64) if layer.use_bias else 0.0
            tape.append(("dense", h, w))
            h = h @ w + b
        elif kind == "BatchNormalization":
            gamma, beta, mean, var = (np.asarray(v, dtype=np.float64) for v in layer.get_weights())
            scale = gamma / np.sqrt(var + layer.epsilon)
            tape.append(("scale", scale))
            h = (h - mean) * scale + beta
            act_name = "linear"
        elif kind == "Flatten":
            tape.append(("reshape", h.shape))
            h = h.reshape(-1)
            act_name = "linear"
        elif kind in ("ReLU",):
            act_name = "relu"
        elif kind == "Activation":
            pass
        else:
            raise NotImplementedError(kind)
        if act_name == "relu":
            tape.append(("relu", h.copy()))
            h = np.maximum(h, 0)
        elif act_name != "linear":
            raise NotImplementedError(act_name)
    return h, tape


def score_and_gradient(model, x, c, rule="gradient", output_layer="z_mean", param=None, reference=None):
    """Concept score c . z(x) of one sample and its (rule-modified) gradient, in float64.

    ``param``: RectGrad's percentile or LRP's epsilon; ``reference``: DeepLIFT's
    reference input (the rescale rule's multipliers are returned).
    """
    chain = layers_to(model, output_layer)
    h, tape = _forward(chain, x)
    tape_ref = _forward(chain, reference)[1] if rule == "rescale" else [None] * len(tape)
    score = float(h @ c)
    g = np.asarray(c, dtype=np.float64)
    for entry, entry_ref in zip(reversed(tape), reversed(tape_ref)):
        kind = entry[0]
        if kind == "relu":
            g = _relu_rule(g, entry[1], rule, param, entry_ref[1] if entry_ref else None)
        elif kind == "dense":
            g = g @ entry[2].T
        elif kind == "conv":
            g = conv_backward(g, entry[1], entry[2], entry[3])
        elif kind == "scale":
            g = g * entry[1]
        elif kind == "reshape":
            g = g.reshape(entry[1])
    return score, g
