"""Running a Keras functional model with a backward rule at its nonlinearities.

A modified gradient (:mod:`.rules`) differs from the plain gradient only in how
the backward pass crosses the model's elementwise nonlinearities ("sites");
every other layer of the usual encoders is linear or piecewise linear and
keeps its gradient (max pooling routes it to the maximum, as all these
methods prescribe). :func:`forward` re-executes the model's graph node by node
(the walk ``Functional.call`` does) and puts a site with the rule's backward
step after every nonlinearity: an ``Activation``/``ReLU``/``LeakyReLU``/``ELU``/
``PReLU`` layer or the fused ``activation=`` of ``Conv*``/``Dense``
(``keras.ops.custom_gradient``, so it works on TensorFlow and JAX). Forward
values are unchanged; the user's model is not modified (a fused activation is
swapped for the duration of the call only); nested functional and sequential
models are walked recursively.

A rule's scalar parameter (LRP's epsilon, RectGrad's percentile) is a tensor
argument, so changing it does not retrace. A paired rule (DeepLIFT) runs the
reference inputs first (forward only) and each site compares a sample with its
reference's values there.

:func:`check_supported` refuses, before anything is traced, a layer whose
backward rule is not defined, naming it.

On TensorFlow every rule, the plain gradient included, walks a functional model
this way so that strided convolutions get :mod:`.strided_conv`'s input gradient
(the same values, computed as forward convolutions).
"""

from __future__ import annotations

import inspect

import keras
from keras import layers as L
from keras import ops

from ..errors import ConfigError
from . import strided_conv
from .rules import GRADIENT, Rule, Site, get_rule

#: elementwise activation functions (by name) a site can carry
ELEMENTWISE = frozenset({
    "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "swish", "mish",
    "tanh", "sigmoid", "hard_sigmoid", "hard_silu", "hard_swish", "hard_tanh", "softplus",
    "softsign", "exponential", "log_sigmoid", "sparse_plus", "squareplus", "tanh_shrink",
    "soft_shrink", "hard_shrink",
})
_LINEAR = frozenset({"linear", None})

#: layers that are linear or piecewise linear in their input (in inference mode), or only
#: route values: they keep their gradient under every rule (a fused activation becomes a site)
_PASS_THROUGH = tuple(getattr(L, n) for n in (
    "InputLayer", "Dense", "EinsumDense", "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose",
    "Conv2DTranspose", "Conv3DTranspose", "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D",
    "SeparableConv2D", "BatchNormalization", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D",
    "AveragePooling1D", "AveragePooling2D", "AveragePooling3D", "GlobalMaxPooling1D",
    "GlobalMaxPooling2D", "GlobalMaxPooling3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
    "GlobalAveragePooling3D", "Flatten", "Reshape", "Permute", "RepeatVector", "Cropping1D",
    "Cropping2D", "Cropping3D", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "UpSampling1D",
    "UpSampling2D", "UpSampling3D", "Dropout", "SpatialDropout1D", "SpatialDropout2D",
    "SpatialDropout3D", "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization",
    "Identity", "Add", "Subtract", "Average", "Concatenate", "Rescaling",
) if hasattr(L, n))
_ACTIVATION_LAYERS = (L.Activation, L.ReLU, L.LeakyReLU, L.ELU, L.PReLU)
SUPPORTED_LAYERS = sorted({c.__name__ for c in _PASS_THROUGH + _ACTIVATION_LAYERS}
                          | {"Functional", "Sequential"})

def _activation_name(fn) -> str | None:
    if fn is None:
        return None
    return getattr(fn, "__name__", None) or type(fn).__name__


def _functional_of(op):
    if isinstance(op, keras.Sequential):
        return getattr(op, "_functional", None)
    if isinstance(op, keras.Model) and hasattr(op, "_run_through_graph") and hasattr(op, "_nodes_by_depth"):
        return op
    return None


def _functional(model, context: str = ""):
    """The functional graph of ``model``; ``ConfigError`` (after ``context``) for a subclassed one."""
    functional = _functional_of(model)
    if functional is None:
        raise ConfigError(f"{context}model '{model.name}' is a subclassed model; modified backward rules "
                          f"need a functional or sequential Keras model")
    return functional


def _plain_relu_layer(op) -> bool:
    return (op.max_value is None and float(op.negative_slope) == 0.0 and float(op.threshold) == 0.0)


def _site_kind(op) -> tuple[str, object] | None:
    """(``"relu"`` | ``"other"``, the nonlinearity) of an activation layer or fused activation."""
    if isinstance(op, L.ReLU):
        return ("relu" if _plain_relu_layer(op) else "other"), op
    if isinstance(op, (L.LeakyReLU, L.ELU, L.PReLU)):
        return "other", op
    activation = getattr(op, "activation", None)
    name = _activation_name(activation)
    if name in _LINEAR:
        return None
    return ("relu" if name == "relu" else "other"), activation


# ---------------------------------------------------------------- checks


def _unsupported(op, model_name: str, method: str, why: str) -> ConfigError:
    from .methods import METHODS  # (imported here: the methods build on this module)

    plain = ", ".join(name for name, cls in METHODS.items() if cls.rule.sites == "none")
    return ConfigError(
        f"saliency method '{method}': layer '{op.name}' ({type(op).__name__}) of model "
        f"'{model_name}' {why}. Modified backward rules support {', '.join(SUPPORTED_LAYERS)} "
        f"and elementwise activations; use one of {plain} for this model, or rebuild it from "
        f"supported layers"
    )


def check_supported(model: keras.Model, rule: Rule, method: str | None = None) -> None:
    """Raise :class:`ConfigError` naming the first layer ``rule`` cannot cross."""
    if rule.sites == "none":
        return
    method = method or rule.name
    functional = _functional(model, f"saliency method '{method}': ")
    for op in functional.layers:
        inner = _functional_of(op)
        if inner is not None:
            check_supported(inner, rule, method)
            continue
        if not isinstance(op, _PASS_THROUGH + _ACTIVATION_LAYERS):
            raise _unsupported(op, model.name, method, "has no such rule")
        if isinstance(op, L.ReLU) and not _plain_relu_layer(op) and rule.sites == "relu":
            raise _unsupported(op, model.name, method,
                               "is a ReLU with max_value/negative_slope/threshold, which has no "
                               f"{rule.name} rule")
        kind = _site_kind(op)
        if kind is not None and kind[0] == "other" and not isinstance(kind[1], keras.layers.Layer):
            name = _activation_name(kind[1])
            if name not in ELEMENTWISE:
                raise _unsupported(op, model.name, method,
                                   f"has the activation '{name}', which is not elementwise")


# ---------------------------------------------------------------- sites


def _site(rule: Rule, relu: bool, u, y, param, ref=None, slope=None):
    """``y = f(u)`` whose backward pass is ``rule.backward``.

    ``ref``: (u', y') of the reference at the same site (paired rules); ``slope``: f' at
    the midpoint of u and u' (paired rules at non-ReLU sites). Everything the backward
    step reads is an argument of the custom-gradient op (JAX forbids closing over
    traced values there).
    """

    @ops.custom_gradient
    def site(u_, y_, param_, ur_, yr_, slope_):
        def grad(*args, upstream=None):
            g = args[0] if upstream is None else upstream
            zeros = [ops.zeros_like(t) for t in (y_, param_, ur_, yr_, slope_)]
            return (rule.backward(g, Site(u_, y_, param_, ur_, yr_, slope_, relu)), *zeros)

        return _identity(y_), grad

    y = ops.stop_gradient(y)
    param = ops.convert_to_tensor(param)
    ur, yr = (y, y) if ref is None else (ops.stop_gradient(ref[0]), ops.stop_gradient(ref[1]))
    return site(u, y, param, ur, yr, y if slope is None else ops.stop_gradient(slope))


def _identity(t):
    """``t`` as a new tensor of the custom-gradient op (TensorFlow's tape needs one; no copy)."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.identity(t)
    return t


def _apply_nonlinearity(rule: Rule, kind: str, fn, u, param, ref=None):
    y = fn(u)
    if rule.sites == "none" or (rule.sites == "relu" and kind != "relu"):
        return y
    slope = None
    if rule.paired and kind != "relu":
        # f' at the midpoint of sample and reference (central difference): DeepLIFT's
        # multiplier where the two are closer than rules.RESCALE_TOLERANCE
        mid = (u + ref[0]) / 2
        h = 1e-3
        slope = (fn(mid + h) - fn(mid - h)) / (2 * h)
    return _site(rule, kind == "relu", u, y, param, ref, slope)


# ---------------------------------------------------------------- the walk


def _accepts_training(op) -> bool:
    flag = getattr(op, "_call_has_training_arg", None)
    if flag is not None:
        return bool(flag)
    try:
        return "training" in inspect.signature(op.call).parameters
    except (TypeError, ValueError):
        return False


def forward(model: keras.Model, x, rule: Rule | str = GRADIENT, param=0.0, reference=None):
    """``model(x)`` in inference mode, with ``rule``'s backward pass at every nonlinearity.

    A paired rule (DeepLIFT) needs ``reference`` inputs: they are run first
    (forward only, no gradient), their values at every site recorded, and each
    site of ``x`` compares with its reference's.
    """
    rule = get_rule(rule)
    if rule.sites == "none":
        if _functional_of(model) is None or keras.backend.backend() != "tensorflow":
            return model(x, training=False)
        return _walk(model, x, None)  # the same graph, with strided_conv's faster input gradients
    if rule.paired:
        if reference is None:
            raise ValueError(f"the {rule.name} rule needs reference inputs")
        recorded = []

        def record(kind, fn, u):
            y = fn(u)
            recorded.append((u, y))
            return y

        _walk(model, ops.stop_gradient(reference), record)
        refs = iter(recorded)  # the graph walk visits the sites in the same order each time
        return _walk(model, x, lambda kind, fn, u: _apply_nonlinearity(rule, kind, fn, u, param, next(refs)))
    return _walk(model, x, lambda kind, fn, u: _apply_nonlinearity(rule, kind, fn, u, param))


def _routed(op, x):
    """A Conv2D layer's convolution and bias through :mod:`.strided_conv`, or None where that
    route does not pay."""
    if isinstance(op, L.Conv2D) and strided_conv.accelerates(op, tuple(x.shape)):
        return strided_conv.linear(op, x)
    return None


def _pre_activation(op, args, kwargs):
    """A layer's output before its fused activation (the user's layer is restored after)."""
    routed = _routed(op, args[0])
    if routed is not None:
        return routed
    fn = op.activation
    op.activation = keras.activations.linear
    try:
        return op(*args, **kwargs)
    finally:
        op.activation = fn


def _walk(model: keras.Model, x, site):
    """Run ``model`` on ``x`` node by node; ``site(kind, f, u)`` computes every nonlinearity f(u)
    (``site=None``: every layer as it is). Strided convolutions that :mod:`.strided_conv`
    accelerates are run through it."""

    def operation_fn(op):
        inner = _functional_of(op)
        if inner is not None and inner is not model:
            return lambda *args, **kwargs: _run(inner, args[0] if len(args) == 1 else list(args))
        training = {"training": False} if _accepts_training(op) else {}
        kind_fn = None if site is None else _site_kind(op)
        if kind_fn is None:
            def as_is(*args, **kwargs):  # (a strided convolution: with the faster gradient)
                routed = _routed(op, args[0])
                return op(*args, **{**kwargs, **training}) if routed is None else op.activation(routed)

            return as_is
        kind, fn = kind_fn
        if isinstance(fn, keras.layers.Layer):  # an activation layer: the layer is f
            return lambda *args, **kwargs: site(kind, lambda t: op(t, **{**kwargs, **training}), args[0])
        if isinstance(op, L.Activation):
            return lambda *args, **kwargs: site(kind, fn, args[0])
        # Conv/Dense with a fused activation: split it off
        return lambda *args, **kwargs: site(kind, fn, _pre_activation(op, args, {**kwargs, **training}))

    def _run(graph, inputs):
        out = graph._run_through_graph(inputs, operation_fn=operation_fn)
        return out[0] if isinstance(out, (list, tuple)) and len(out) == 1 else out

    return _run(_functional(model), x)
