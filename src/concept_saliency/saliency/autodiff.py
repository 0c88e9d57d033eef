"""Compiled concept scores and their (rule-modified) gradients, on TensorFlow and JAX.

:class:`ScoreGradient` turns a latent model into compiled functions

- ``(x, c[, reference], param) -> (scores, d scores / d x)`` with
  ``scores[i] = c[i] . z(x[i])`` and the backward rule of :mod:`.graph`;
- ``(x, c) -> scores`` (forward only: occlusion, deletion curves);
- ``(x, baseline, c, alphas, weights) -> (x - baseline) * sum_k weights[k] *
  d scores / d x at baseline + alphas[k] (x - baseline)``: integrated gradients with the
  path points made and summed in the compiled function (on the accelerator, if any), so
  only the inputs and the maps cross the host boundary (not ``steps`` times as many
  points and gradients).

Each sample carries its own concept vector, so one batch can mix concepts.
A function is traced once per model, rule and input shape (TensorFlow:
``tf.function`` with a fixed signature, batch dimension free; JAX: ``jax.jit``
over the model's weights as arguments, so no weight is baked into the
program and re-assigned weights are used as they are) and kept for the
model's lifetime, so new explainers of the same model reuse it. Inputs are
fed in chunks of ``chunk_size`` samples, so memory stays bounded.
"""

from __future__ import annotations

import functools
import weakref

import keras
import numpy as np
from keras import ops

from .graph import GRADIENT, RULES, Rule, check_supported, forward

#: model -> {(kind, rule, sample shape, latent dim, dtype): compiled function}
_COMPILED: "weakref.WeakKeyDictionary[keras.Model, dict]" = weakref.WeakKeyDictionary()


class _Compiled:
    """A compiled function and how many times it was traced."""

    def __init__(self, fn, traces):
        self.fn, self.traces = fn, traces

    def __call__(self, *args):
        return self.fn(*args)


def _forward_only(scores, x, c):
    return scores(x, c, None, 0.0)


def _tf_gradient(scores, x, c, r, p):
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(x)
        s = scores(x, c, r, p)
    return s, tape.gradient(s, x)


def _tf_gradient_unpaired(scores, x, c, p):
    return _tf_gradient(scores, x, c, None, p)


def _tf_path(scores, x, b, c, alphas, weights):
    """Integrated gradients in one TensorFlow call: path points made and summed in the graph."""
    import tensorflow as tf

    n, steps, rest = tf.shape(x)[0], tf.shape(alphas)[0], tf.shape(x)[1:]
    along = [1, -1] + [1] * (x.shape.rank - 1)  # broadcast over (sample, step, ...)
    diff = x - b
    points = tf.reshape(b[:, None] + tf.reshape(alphas, along) * diff[:, None], tf.concat([[n * steps], rest], 0))
    _, g = _tf_gradient(scores, points, tf.repeat(c, steps, axis=0), None, tf.zeros((), x.dtype))
    g = tf.reshape(g, tf.concat([[n, steps], rest], 0))
    return diff * tf.reduce_sum(g * tf.reshape(weights, along), axis=1)


def _build(model_ref, rule: Rule, kind: str, sample_shape, latent_dim, dtype):
    backend = keras.backend.backend()

    def scores(x, c, reference, param):
        model = model_ref()
        z = forward(model, x, rule, param, reference)
        return ops.sum(z * c, axis=1)

    if backend == "tensorflow":
        import tensorflow as tf

        xs = tf.TensorSpec((None, *sample_shape), dtype)
        cs = tf.TensorSpec((None, latent_dim), dtype)
        ps = tf.TensorSpec((), dtype)
        # partials, not lambdas: TF counts traces per code object, and each model, rule and shape
        # is traced once by design (no "frequent retracing" warning for many models)
        if kind == "scores":
            fn = tf.function(functools.partial(_forward_only, scores), input_signature=[xs, cs])
            return _Compiled(lambda x, c, r, p: (fn(x, c).numpy(), None), fn.experimental_get_tracing_count)
        if kind == "path":
            ks = tf.TensorSpec((None,), dtype)
            fn = tf.function(functools.partial(_tf_path, scores), input_signature=[xs, xs, cs, ks, ks])
            return _Compiled(lambda x, b, c, a, w: fn(x, b, c, a, w).numpy(), fn.experimental_get_tracing_count)

        if rule.paired:
            fn = tf.function(functools.partial(_tf_gradient, scores), input_signature=[xs, cs, xs, ps])
            return _Compiled(lambda x, c, r, p: tuple(t.numpy() for t in fn(x, c, r, p)),
                             fn.experimental_get_tracing_count)
        fn = tf.function(functools.partial(_tf_gradient_unpaired, scores), input_signature=[xs, cs, ps])
        return _Compiled(lambda x, c, r, p: tuple(t.numpy() for t in fn(x, c, p)),
                         fn.experimental_get_tracing_count)

    if backend == "jax":
        import jax
        import jax.numpy as jnp

        variables = list(model_ref().variables)

        def stateless(values, x, c, r, p):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return scores(x, c, r, p)

        if kind == "scores":
            fn = jax.jit(stateless)
        elif kind == "path":
            def path(values, x, b, c, alphas, weights):
                n, steps = x.shape[0], alphas.shape[0]
                diff = x - b
                shape = (1, steps) + (1,) * (x.ndim - 1)
                points = (b[:, None] + alphas.reshape(shape) * diff[:, None]).reshape(
                    (n * steps,) + x.shape[1:])
                cs = jnp.repeat(c, steps, axis=0)
                g = jax.grad(lambda p: jnp.sum(stateless(values, p, cs, None, 0.0)))(points)
                avg = jnp.tensordot(weights, g.reshape((n, steps) + x.shape[1:]), axes=([0], [1]))
                return diff * avg

            jitted = jax.jit(path)

            def call(x, b, c, alphas, weights):
                return np.asarray(jitted([v.value for v in variables], x, b, c, alphas, weights))

            return _Compiled(call, jitted._cache_size)
        else:
            def total(values, x, c, r, p):
                s = stateless(values, x, c, r, p)
                return jnp.sum(s), s

            vg = jax.jit(jax.value_and_grad(total, argnums=1, has_aux=True))

            def fn(values, x, c, r, p):
                (_, s), g = vg(values, x, c, r, p)
                return s, g

        def call(x, c, r, p):
            out = fn([v.value for v in variables], x, c, r, np.asarray(p, dtype))
            if kind == "scores":
                return np.asarray(out), None
            return np.asarray(out[0]), np.asarray(out[1])

        jitted = fn if kind == "scores" else vg
        return _Compiled(call, jitted._cache_size)  # one program per batch size (chunks are padded)

    raise NotImplementedError(f"saliency needs the tensorflow or jax Keras backend, not {backend!r}")


class ScoreGradient:
    """Concept scores and gradients of ``model`` under a backward ``rule``, compiled and chunked."""

    def __init__(self, model: keras.Model, rule: Rule | str = GRADIENT, chunk_size: int = 64,
                 method: str | None = None):
        self.model = model
        self.rule = RULES[rule] if isinstance(rule, str) else rule
        self.chunk_size = int(chunk_size)
        if self.chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        check_supported(model, self.rule, method)
        self.backend = keras.backend.backend()
        # float32 models (the norm) get float32 maps; a float64 model is differentiated in float64
        self.dtype = np.dtype(keras.backend.standardize_dtype(model.inputs[0].dtype))

    def _function(self, kind: str, sample_shape, latent_dim):
        cache = _COMPILED.setdefault(self.model, {})
        key = (kind, self.rule.name if kind == "gradient" else "", sample_shape, latent_dim,
               self.dtype.name)
        if key not in cache:
            cache[key] = _build(weakref.ref(self.model), self.rule if kind == "gradient" else GRADIENT,
                                kind, sample_shape, latent_dim, self.dtype)
        return cache[key]

    def _chunked(self, kind, x, c, reference, param):
        x = np.asarray(x, dtype=self.dtype)
        c = np.asarray(c, dtype=self.dtype)
        if len(c) != len(x):
            raise ValueError(f"{len(x)} samples but {len(c)} concept vectors")
        fn = self._function(kind, tuple(x.shape[1:]), c.shape[1])
        paired = kind == "gradient" and self.rule.paired
        if paired:
            reference = np.broadcast_to(np.asarray(reference, dtype=self.dtype), x.shape)
        n, chunk = len(x), self.chunk_size
        scores = np.empty(n, dtype=self.dtype)
        grads = np.empty_like(x) if kind == "gradient" else None
        param = np.asarray(param, dtype=self.dtype)
        for start in range(0, n, chunk):
            sl = slice(start, start + chunk)
            xb, cb = x[sl], c[sl]
            rb = reference[sl] if paired else None
            m = len(xb)
            if self.backend == "jax" and m < chunk and n > chunk:
                # pad the last chunk so JAX reuses the program compiled for full chunks
                pad = lambda a: np.concatenate([a, np.zeros((chunk - m, *a.shape[1:]), a.dtype)])  # noqa: E731
                xb, cb = pad(xb), pad(cb)
                rb = pad(rb) if paired else None
            s, g = fn(xb, cb, rb, param)
            scores[start:start + m] = s[:m]
            if grads is not None:
                grads[start:start + m] = g[:m]
        return scores, grads

    def __call__(self, x: np.ndarray, c: np.ndarray, reference: np.ndarray | None = None,
                 param: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Scores ``(N,)`` and gradients ``x.shape`` for samples ``x`` and vectors ``c`` (N, D).

        ``reference``: the paired rule's reference inputs (broadcast to ``x``);
        ``param``: the rule's scalar parameter (epsilon, percentile).
        """
        if self.rule.paired and reference is None:
            raise ValueError(f"the {self.rule.name} rule needs reference inputs")
        return self._chunked("gradient", x, c, reference, param)

    def path_integral(self, x: np.ndarray, baseline: np.ndarray, c: np.ndarray,
                      alphas: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Integrated-gradients maps ``(x - baseline) * sum_k weights[k] * grad(baseline +
        alphas[k] (x - baseline))``, the path points made and summed inside the compiled
        function (plain gradient rule only)."""
        if self.rule is not GRADIENT:
            raise ValueError(f"integrated gradients use the plain gradient, not the {self.rule.name} rule")
        x = np.asarray(x, dtype=self.dtype)
        baseline = np.asarray(baseline, dtype=self.dtype)
        c = np.asarray(c, dtype=self.dtype)
        cache = _COMPILED.setdefault(self.model, {})
        key = ("path", "", tuple(x.shape[1:]), c.shape[1], self.dtype.name)
        if key not in cache:
            cache[key] = _build(weakref.ref(self.model), GRADIENT, "path", tuple(x.shape[1:]),
                                c.shape[1], self.dtype)
        fn, alphas, weights = cache[key], np.asarray(alphas, self.dtype), np.asarray(weights, self.dtype)
        # at most chunk_size path points per call: a long path is split into groups of steps
        group = max(1, self.chunk_size // len(x))
        maps = None
        for start in range(0, len(alphas), group):
            a, w = alphas[start:start + group], weights[start:start + group]
            if self.backend == "jax" and len(a) < group < len(alphas):  # keep the compiled shape
                a, w = (np.concatenate([t, np.zeros(group - len(t), t.dtype)]) for t in (a, w))
            part = fn(x, baseline, c, a, w)  # padded steps have weight 0
            maps = part if maps is None else maps + part
        return maps

    def scores(self, x: np.ndarray, c: np.ndarray) -> np.ndarray:
        """Concept scores ``(N,)`` only (a compiled forward pass)."""
        return self._chunked("scores", x, c, None, 0.0)[0]
