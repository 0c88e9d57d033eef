"""Running a Keras functional model with modified backward rules at its ReLUs.

Guided backpropagation, deconvnet and RectGrad differ from the plain gradient
only in how the gradient passes a ReLU. :func:`forward` re-executes the
model's graph node by node (the same walk ``Functional.call`` does) and
replaces every ReLU, whether a ``ReLU``/``Activation`` layer or the fused
``activation="relu"`` of ``Conv2D``/``Dense``, by a ReLU with the chosen
backward rule (``keras.ops.custom_gradient``, so it works on TensorFlow and
JAX). The forward values are unchanged, the user's model is not modified
(a fused activation is swapped only for the duration of the call), and
nested functional or sequential models are walked recursively.
"""

from __future__ import annotations

import inspect

import keras
from keras import ops

RULES = ("gradient", "guided", "deconvnet")


def _is_relu_activation(fn) -> bool:
    return fn is keras.activations.relu or getattr(fn, "__name__", "") == "relu"


def _relu_layer(op) -> bool:
    if isinstance(op, keras.layers.ReLU):
        plain = (op.max_value is None and float(op.negative_slope) == 0.0
                 and float(op.threshold) == 0.0)
        if not plain:
            raise NotImplementedError(
                f"layer '{op.name}': a ReLU with max_value/negative_slope/threshold has no "
                f"guided or deconvnet rule; use a gradient-based method for this model"
            )
        return True
    return False


def relu_with_rule(rule: str):
    """A ReLU whose backward pass follows ``rule``."""
    if rule == "gradient":
        return ops.relu

    @ops.custom_gradient
    def relu(x):
        y = ops.relu(x)

        def grad(*args, upstream=None):
            g = args[0] if upstream is None else upstream
            if rule == "guided":  # Springenberg et al.: positive inputs and positive gradients
                return g * ops.cast(x > 0, g.dtype) * ops.cast(g > 0, g.dtype)
            if rule == "deconvnet":  # Zeiler & Fergus: ReLU of the gradient, ignoring the input
                return ops.relu(g)
            raise ValueError(rule)

        return y, grad

    return relu


def _accepts_training(op) -> bool:
    flag = getattr(op, "_call_has_training_arg", None)
    if flag is not None:
        return bool(flag)
    try:
        return "training" in inspect.signature(op.call).parameters
    except (TypeError, ValueError):
        return False


def _functional_of(op):
    if isinstance(op, keras.Sequential):
        return getattr(op, "_functional", None)
    if isinstance(op, keras.Model) and hasattr(op, "_run_through_graph") and hasattr(op, "_nodes_by_depth"):
        return op
    return None


def forward(model: keras.Model, x, rule: str = "gradient"):
    """``model(x)`` in inference mode, with ``rule`` applied at every ReLU."""
    if rule not in RULES:
        raise ValueError(f"unknown backward rule {rule!r}")
    if rule == "gradient":
        return model(x, training=False)
    relu = relu_with_rule(rule)

    def operation_fn(op):
        if _relu_layer(op):
            return lambda *args, **kwargs: relu(args[0])
        inner = _functional_of(op)
        if inner is not None and inner is not model:
            return lambda *args, **kwargs: _run(inner, args[0] if len(args) == 1 else list(args))
        activation = getattr(op, "activation", None)
        training = {"training": False} if _accepts_training(op) else {}
        if activation is not None and _is_relu_activation(activation):
            def call_split(*args, **kwargs):
                op.activation = keras.activations.linear
                try:
                    y = op(*args, **{**kwargs, **training})
                finally:
                    op.activation = activation
                return relu(y)

            return call_split
        return lambda *args, **kwargs: op(*args, **{**kwargs, **training})

    def _run(graph, inputs):
        out = graph._run_through_graph(inputs, operation_fn=operation_fn)
        return out[0] if isinstance(out, (list, tuple)) and len(out) == 1 else out

    functional = _functional_of(model)
    if functional is None:
        raise NotImplementedError(
            f"model '{model.name}' is a subclassed model; modified backward rules need a "
            f"functional or sequential Keras model"
        )
    return _run(functional, x)
