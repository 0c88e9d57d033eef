"""Backward rules: how a modified gradient crosses the model's nonlinearities.

Guided backpropagation, deconvnet, RectGrad, epsilon-LRP and DeepLIFT (rescale)
differ from the plain gradient only in the backward step at each elementwise
nonlinearity ``y = f(u)`` (a "site"; :mod:`.graph` finds them and calls
:meth:`Rule.backward` there). A rule is an object: its ``name`` (the key of its
compiled functions), which sites it modifies, whether it needs reference inputs,
and its backward step. A method with a new rule is a :class:`Rule` subclass here
and a method class in :mod:`.methods` that names an instance of it.
"""

from __future__ import annotations

import functools
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from keras import ops


@dataclass(frozen=True)
class Site:
    """What a backward step may read at one nonlinearity ``y = f(u)`` (tensors shaped like ``u``).

    ``param``: the rule's scalar parameter (a 0-d tensor; float64 on TensorFlow);
    ``u_ref``, ``y_ref``: the reference inputs' values at this site (paired rules; otherwise
    ``u`` and ``y``; a batch of one where every sample has the same reference, broadcast);
    ``slope``: ``f'`` at the midpoint of ``u`` and ``u_ref`` (paired rules at non-ReLU sites;
    otherwise ``y``); ``relu``: whether ``f`` is a plain ReLU.
    """

    u: Any
    y: Any
    param: Any
    u_ref: Any
    y_ref: Any
    slope: Any
    relu: bool


@dataclass(frozen=True)
class Rule:
    """A backward rule.

    ``sites``: ``"none"`` (the plain gradient: nothing is modified), ``"relu"`` (plain
    ReLUs only; other nonlinearities keep their gradient) or ``"all"`` (every elementwise
    nonlinearity). ``paired``: the rule compares each sample with reference inputs.
    """

    name: str
    sites: str = "relu"
    paired: bool = False

    def backward(self, g, site: Site):
        """The gradient passed to ``u`` given the upstream gradient ``g`` at ``y``."""
        raise NotImplementedError(f"the {self.name} rule has no backward step")


@dataclass(frozen=True)
class PositiveGradient(Rule):
    """Only positive gradients pass a ReLU: guided backpropagation (Springenberg et al. 2015,
    ``gate_on_input``: and only at positive inputs) and deconvnet (Zeiler & Fergus 2014:
    whatever the input)."""

    gate_on_input: bool = True

    def backward(self, g, site):
        if not self.gate_on_input:
            return ops.relu(g)
        return elementwise(_guided, g, site.u)


@dataclass(frozen=True)
class Rectified(Rule):
    """RectGrad (Kim et al. 2019): ``g`` passes where the importance ``y * g`` exceeds its
    ``param``-th percentile over the layer, per sample (``param`` in [0, 100)).

    The percentile is numpy's (linear interpolation): of a sample's ``n`` importances
    sorted, position ``(n - 1) * param / 100``. An importance exceeds it exactly when it
    exceeds the order statistic at the position's floor, since no importance lies strictly
    between two neighbouring order statistics; that order statistic is the threshold here
    (:func:`order_statistic`: a selection, not a sort). Ties: importances equal to the
    threshold are cut, every larger one passes.
    """

    def backward(self, g, site):
        importance = site.y * g
        n = math.prod(importance.shape[1:])  # (static: the layer's shape is)
        flat = ops.reshape(importance, (-1, n))
        threshold = ops.reshape(order_statistic(flat, _floor_position(n, site.param)),
                                (-1,) + (1,) * (len(importance.shape) - 1))
        return elementwise(_above, g, importance, threshold)


@dataclass(frozen=True)
class Epsilon(Rule):
    """Epsilon-LRP (Bach et al. 2015) as a modified gradient: ``g * f(u) / (u + epsilon sign u)``
    (``param`` = epsilon)."""

    sites: str = "all"

    def backward(self, g, site):
        return elementwise(_epsilon, g, site.u, site.y, ops.cast(site.param, g.dtype))


#: DeepLIFT: below this |u - u_ref| the secant becomes the derivative (as the original)
RESCALE_TOLERANCE = 1e-5


@dataclass(frozen=True)
class Rescale(Rule):
    """DeepLIFT's rescale rule (Shrikumar et al. 2017): the secant slope
    ``(f(u) - f(u_ref)) / (u - u_ref)`` between each sample and its reference; where the two
    are closer than :data:`RESCALE_TOLERANCE`, the derivative at their midpoint."""

    sites: str = "all"
    paired: bool = True

    def backward(self, g, site):
        return elementwise(_rescale, g, site.u, site.u_ref, site.y, site.y_ref, site.slope, relu=site.relu)


# ---------------------------------------------------------------- the elementwise steps


def _guided(g, u):
    return ops.relu(g) * ops.cast(u > 0, g.dtype)


def _above(g, importance, threshold):
    return g * ops.cast(importance > threshold, g.dtype)


def _epsilon(g, u, y, epsilon):
    sign = ops.where(u >= 0, ops.ones_like(u), -ops.ones_like(u))
    return g * y / (u + epsilon * sign)


def _rescale(g, u, u_ref, y, y_ref, slope, relu):
    du = u - u_ref
    secant = (y - y_ref) / du  # (inf or nan where du = 0: not taken)
    near = ops.cast((u + u_ref) > 0, g.dtype) if relu else slope
    return g * ops.where(ops.abs(du) > RESCALE_TOLERANCE, secant, near)


def elementwise(step, *tensors, **constants):
    """``step(*tensors, **constants)``, on TensorFlow compiled by XLA into one kernel (one pass
    over memory instead of one per operation; JAX compiles everything with XLA anyway).
    ``constants``: Python values the step is specialised for."""
    if keras.backend.backend() != "tensorflow":
        return step(*tensors, **constants)
    import tensorflow as tf

    # a new function for each site (traced once, with the outer function): no retracing warnings
    return tf.function(functools.partial(step, **constants), jit_compile=True, autograph=False)(*tensors)


def _floor_position(n: int, percentile):
    """``floor((n - 1) * percentile / 100)`` as a 0-d int32 tensor in [0, n): the position of
    numpy's percentile in ``n`` sorted values, rounded down (corrected by one where the division
    rounds across an integer: XLA divides by a constant as a multiplication by its reciprocal)."""
    t = (n - 1) * _wide(percentile)
    i = ops.floor(t / 100.0)
    i = i + ops.cast((i + 1) * 100.0 <= t, i.dtype) - ops.cast(i * 100.0 > t, i.dtype)
    return ops.clip(ops.cast(i, "int32"), 0, n - 1)


def _wide(t):
    """``t`` in float64 where the backend computes in it by default (TensorFlow; JAX only with
    ``jax_enable_x64``, else float32)."""
    if keras.backend.backend() == "jax":
        import jax

        return t if not jax.config.jax_enable_x64 else ops.cast(t, "float64")
    return ops.cast(t, "float64")


def order_statistic(rows, index):
    """The ``index``-th smallest value of each row of ``rows`` ``(N, n)`` (``index`` a 0-d int32
    tensor in [0, n)); returns ``(N,)``.

    TensorFlow on CPU: numpy's selection (``np.partition``) per row, rows on a thread pool
    (a ``tf.numpy_function``; benchmarks/RESULTS-saliency.md compares it with TensorFlow's
    top-k and sort); on a GPU: a top-k of the smaller side (the ``n - index`` largest, or the
    ``index + 1`` smallest), whose minimum (maximum) it is. JAX: a sort (its top-k needs a
    static k).
    """
    if keras.backend.backend() != "tensorflow":
        return ops.take(ops.sort(rows, axis=1), index, axis=1)
    import tensorflow as tf

    from .strided_conv import tensorflow_sees_gpu

    if not tensorflow_sees_gpu():
        return tf.reshape(tf.numpy_function(_partition_rows, [rows, index], rows.dtype, stateful=False), (-1,))
    n = rows.shape[1]
    return tf.cond(n - index <= index + 1,
                   lambda: tf.reduce_min(tf.math.top_k(rows, n - index, sorted=False).values, axis=1),
                   lambda: -tf.reduce_min(tf.math.top_k(-rows, index + 1, sorted=False).values, axis=1))


@functools.cache
def _row_pool() -> ThreadPoolExecutor:
    # the job's threads (backend.use_backend sets them from the rule's), else the CPUs this
    # process may run on (a cluster job's allocation), not the machine's
    cpus = int(os.environ.get("TF_NUM_INTRAOP_THREADS", 0)) or (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    return ThreadPoolExecutor(max(1, cpus or 1), thread_name_prefix="order-statistic")


def _partition_rows(rows: np.ndarray, index) -> np.ndarray:
    """The ``index``-th smallest of each row (numpy's partition: the same value as a full sort)."""
    index = int(index)
    out = np.empty(len(rows), rows.dtype)

    def select(i):
        row = rows[i].copy()
        row.partition(index)
        out[i] = row[index]

    list(_row_pool().map(select, range(len(rows))))
    return out


GRADIENT = Rule("gradient", sites="none")
GUIDED = PositiveGradient("guided", gate_on_input=True)
DECONVNET = PositiveGradient("deconvnet", gate_on_input=False)
RECTGRAD = Rectified("rectgrad")
EPSILON = Epsilon("epsilon")
RESCALE = Rescale("rescale")

#: the rules by name (``ScoreGradient(model, "guided")``)
RULES: dict[str, Rule] = {r.name: r for r in (GRADIENT, GUIDED, DECONVNET, RECTGRAD, EPSILON, RESCALE)}


def get_rule(rule: Rule | str) -> Rule:
    """``rule`` itself, or the rule of that name; ``ValueError`` for an unknown name."""
    if isinstance(rule, Rule):
        return rule
    if rule not in RULES:
        raise ValueError(f"unknown backward rule {rule!r}; known: {', '.join(RULES)}")
    return RULES[rule]
