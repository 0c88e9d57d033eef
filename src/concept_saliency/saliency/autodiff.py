"""Compiled concept scores and their (rule-modified) gradients, on TensorFlow and JAX.

:class:`ScoreGradient` turns a latent model into compiled functions:

- ``scores``: ``(x, c) -> s`` with ``s[i] = c[i] . z(x[i])`` (forward only: occlusion,
  deletion curves);
- ``gradient``: ``(x, c, param) -> (s, d s / d x)`` under a backward rule of
  :mod:`.rules` (``paired_gradient``: ``(x, c, reference, param)``, DeepLIFT's);
- ``path``: ``(x, baseline, c, alphas, weights) -> (x - baseline) * sum_k weights[k] *
  d s / d x at baseline + alphas[k] (x - baseline)``: integrated gradients with the path
  points made and summed in the compiled function, so only the inputs and the maps
  cross the host boundary (not ``steps`` times as many points and gradients).

Each sample carries its own concept vector, so one batch can mix concepts. A function
is traced once per model, kind, rule, sample shape and dtype (TensorFlow: ``tf.function``
with a fixed signature, batch dimension free; JAX: ``jax.jit`` over the model's weights as
arguments, so no weight is baked into the program and re-assigned weights are used as they
are; JAX's chunks are padded to one size) and kept for the model's lifetime, so new
explainers of the same model reuse it. Rows are fed in chunks of ``chunk_size``
(:mod:`.batching`), so memory stays bounded.
"""

from __future__ import annotations

import functools
import weakref

import keras
import numpy as np
from keras import ops

from .batching import map_chunks, sum_chunks
from .graph import check_supported, forward
from .rules import GRADIENT, Rule, get_rule

#: model -> {(kind, rule name, sample shape, latent dim, dtype): compiled function}
_COMPILED: weakref.WeakKeyDictionary[keras.Model, dict] = weakref.WeakKeyDictionary()


class _Compiled:
    """A compiled function taking and returning numpy arrays, and its number of traces."""

    def __init__(self, fn, traces):
        self.fn, self.traces = fn, traces

    def __call__(self, *args):
        return self.fn(*args)


# ---------------------------------------------------------------- the kinds of function, backend-neutral
# ``grad(f, x)`` is the backend's (f(x), d sum(f(x)) / d x) for a per-sample score function f.


def _scores(model_ref, rule, x, c, reference, param):
    return ops.sum(forward(model_ref(), x, rule, param, reference) * c, axis=1)


def _kind_scores(scores, grad, x, c):
    return scores(x, c, None, 0.0)


def _kind_gradient(scores, grad, x, c, param):
    return grad(lambda t: scores(t, c, None, param), x)


def _kind_paired_gradient(scores, grad, x, c, reference, param):
    return grad(lambda t: scores(t, c, reference, param), x)


def _kind_path(scores, grad, x, baseline, c, alphas, weights):
    along = (1, -1) + (1,) * (len(x.shape) - 1)  # broadcast over (sample, step, ...)
    diff = x - baseline
    points = baseline[:, None] + ops.reshape(alphas, along) * diff[:, None]
    cs = ops.repeat(c, ops.shape(alphas)[0], axis=0)
    _, g = grad(lambda t: scores(t, cs, None, 0.0), ops.reshape(points, (-1, *x.shape[1:])))
    return diff * ops.sum(ops.reshape(g, ops.shape(points)) * ops.reshape(weights, along), axis=1)


_KINDS = {"scores": _kind_scores, "gradient": _kind_gradient, "paired_gradient": _kind_paired_gradient,
          "path": _kind_path}


# ---------------------------------------------------------------- compiling


def _tf_grad(f, x):
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(x)
        s = f(x)
    return s, tape.gradient(s, x)


def _build_tensorflow(kind, scores, signature):
    import tensorflow as tf

    # a partial, not a closure: TF counts traces per code object, and each model, rule and
    # shape is traced once by design (no "frequent retracing" warning for many models). No
    # autograph: nothing here branches on tensors (and its conversion cache once handed one
    # function's conversion to another when two copies of this package ran in one process)
    fn = tf.function(functools.partial(_KINDS[kind], scores, _tf_grad), input_signature=signature,
                     autograph=False)

    def call(*args):
        out = fn(*args)
        return tuple(t.numpy() for t in out) if isinstance(out, tuple) else out.numpy()

    return _Compiled(call, fn.experimental_get_tracing_count)


def _build_jax(kind, scores, model):
    import jax
    import jax.numpy as jnp

    variables = list(model.variables)

    def stateless(values, *args):
        def scores_of(x, c, reference, param):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return scores(x, c, reference, param)

        def grad(f, x):
            def total(t):
                s = f(t)
                return jnp.sum(s), s

            (_, s), g = jax.value_and_grad(total, has_aux=True)(x)
            return s, g

        return _KINDS[kind](scores_of, grad, *args)

    jitted = jax.jit(stateless)

    def call(*args):
        out = jitted([v.value for v in variables], *args)
        return tuple(np.asarray(t) for t in out) if isinstance(out, tuple) else np.asarray(out)

    return _Compiled(call, jitted._cache_size)


def _build(model: keras.Model, kind: str, rule: Rule, sample_shape, latent_dim, dtype) -> _Compiled:
    backend = keras.backend.backend()
    scores = functools.partial(_scores, weakref.ref(model), rule)
    if backend == "tensorflow":
        import tensorflow as tf

        xs, cs = tf.TensorSpec((None, *sample_shape), dtype), tf.TensorSpec((None, latent_dim), dtype)
        ks, ps = tf.TensorSpec((None,), dtype), tf.TensorSpec((), tf.float64)
        signature = {"scores": [xs, cs], "gradient": [xs, cs, ps], "paired_gradient": [xs, cs, xs, ps],
                     "path": [xs, xs, cs, ks, ks]}[kind]
        return _build_tensorflow(kind, scores, signature)
    if backend == "jax":
        return _build_jax(kind, scores, model)
    raise NotImplementedError(f"saliency needs the tensorflow or jax Keras backend, not {backend!r}")


def _shared(rows: np.ndarray) -> np.ndarray:
    """``rows[:1]`` where every row equals the first, else ``rows``."""
    return rows[:1] if len(rows) and (rows.strides[0] == 0 or (rows == rows[:1]).all()) else rows


class ScoreGradient:
    """Concept scores and gradients of ``model`` under a backward ``rule``, compiled and chunked.

    Arguments: ``model`` a single-output Keras model (the latent); ``rule`` a
    :class:`~.rules.Rule` or its name; ``chunk_size`` rows per compiled call (>= 1);
    ``method`` the method name used in error messages. Raises ``ValueError`` for a chunk
    size below 1 or an unknown rule name, and
    :class:`~concept_saliency.errors.ConfigError` for a model with a layer ``rule`` cannot
    cross. ``dtype``: the model's input float type, that of every result.
    """

    def __init__(self, model: keras.Model, rule: Rule | str = GRADIENT, chunk_size: int = 64,
                 method: str | None = None):
        self.model = model
        self.rule = get_rule(rule)
        self.chunk_size = int(chunk_size)
        if self.chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        check_supported(model, self.rule, method)
        self.backend = keras.backend.backend()
        self.pad = self.backend == "jax"  # one compiled program for full chunks
        # float32 models (the norm) get float32 maps; a float64 model is differentiated in float64
        self.dtype = np.dtype(keras.backend.standardize_dtype(model.inputs[0].dtype))

    def _function(self, kind: str, x: np.ndarray, c: np.ndarray) -> _Compiled:
        """The compiled function of ``kind`` for samples shaped like ``x[0]`` (one per model, kind,
        rule, shape and dtype; only the gradients have a rule)."""
        ruled = kind.endswith("gradient")
        rule = self.rule if ruled else GRADIENT
        key = (kind, rule.name if ruled else "", tuple(x.shape[1:]), c.shape[1], self.dtype.name)
        cache = _COMPILED.setdefault(self.model, {})
        if key not in cache:
            cache[key] = _build(self.model, kind, rule, tuple(x.shape[1:]), c.shape[1], self.dtype)
        return cache[key]

    def _arrays(self, *arrays):
        return [np.asarray(a, dtype=self.dtype) for a in arrays]

    def _check_lengths(self, x, c):
        if len(c) != len(x):
            raise ValueError(f"{len(x)} samples but {len(c)} concept vectors")

    def __call__(self, x: np.ndarray, c: np.ndarray, reference: np.ndarray | None = None,
                 param: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Scores ``(N,)`` and gradients ``x.shape`` for samples ``x`` and vectors ``c`` ``(N, D)``.

        ``reference``: the paired rule's reference inputs (broadcast to ``x``; required by a
        paired rule, ignored otherwise); ``param``: the rule's scalar parameter (epsilon,
        percentile). Raises ``ValueError`` for a missing reference or mismatched lengths.
        """
        x, c = self._arrays(x, c)
        self._check_lengths(x, c)
        if self.rule.paired and reference is None:
            raise ValueError(f"the {self.rule.name} rule needs reference inputs")
        if len(x) == 0:
            return np.empty(0, self.dtype), np.empty_like(x)
        p = np.asarray(param, np.float64)  # (RectGrad's percentile position is computed in float64)
        if self.rule.paired:
            fn = self._function("paired_gradient", x, c)
            reference = _shared(np.broadcast_to(np.asarray(reference, self.dtype), x.shape))
            if len(reference) == 1:  # one reference for all: its forward pass is one sample's
                return map_chunks(lambda xb, cb: fn(xb, cb, reference, p), (x, c), self.chunk_size, pad=self.pad)
            return map_chunks(lambda xb, cb, rb: fn(xb, cb, rb, p), (x, c, reference), self.chunk_size,
                              pad=self.pad)
        fn = self._function("gradient", x, c)
        return map_chunks(lambda xb, cb: fn(xb, cb, p), (x, c), self.chunk_size, pad=self.pad)

    def scores(self, x: np.ndarray, c: np.ndarray) -> np.ndarray:
        """Concept scores ``(N,)`` only (a compiled forward pass)."""
        x, c = self._arrays(x, c)
        self._check_lengths(x, c)
        if len(x) == 0:
            return np.empty(0, self.dtype)
        return map_chunks(self._function("scores", x, c), (x, c), self.chunk_size, pad=self.pad)

    def path_integral(self, x: np.ndarray, baseline: np.ndarray, c: np.ndarray,
                      alphas: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Integrated-gradients maps ``(x - baseline) * sum_k weights[k] * grad(baseline +
        alphas[k] (x - baseline))`` of the plain gradient, shaped like ``x``.

        At most ``chunk_size`` path points per compiled call: the paths of several samples
        at once, or a long path in groups of steps. Raises ``ValueError`` under a modified rule.
        """
        if self.rule is not GRADIENT:
            raise ValueError(f"integrated gradients use the plain gradient, not the {self.rule.name} rule")
        x, baseline, c, alphas, weights = self._arrays(x, baseline, c, alphas, weights)
        self._check_lengths(x, c)
        if len(x) == 0:
            return np.empty_like(x)
        fn = self._function("path", x, c)

        def integrate(xb, bb, cb):  # samples whose paths fill a call, or one path in groups of steps
            return sum_chunks(lambda a, w: fn(xb, bb, cb, a, w), (alphas, weights),
                              max(1, self.chunk_size // len(xb)), pad=self.pad)  # padded steps weigh 0

        return map_chunks(integrate, (x, baseline, c), max(1, self.chunk_size // len(alphas)), pad=self.pad)
