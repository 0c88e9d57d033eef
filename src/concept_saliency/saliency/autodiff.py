"""Compiled concept-score gradients on the TensorFlow and JAX backends.

:class:`ScoreGradient` turns a latent model into one compiled function
``(x, c) -> (scores, d scores / d x)`` where ``scores[i] = c[i] . z(x[i])``.
Each sample carries its own concept vector, so one batch can mix concepts.
The function is traced once per input shape (TensorFlow: ``tf.function``
with a fixed signature, batch dimension free; JAX: ``jax.jit`` over the
model's weights as arguments, so no weight is baked into the program), and
inputs are fed in chunks of ``chunk_size`` so memory stays bounded.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from .graph import forward


class ScoreGradient:
    def __init__(self, model: keras.Model, rule: str = "gradient", chunk_size: int = 64):
        self.model = model
        self.rule = rule
        self.chunk_size = int(chunk_size)
        self.backend = keras.backend.backend()
        # float32 models (the norm) get float32 maps; a float64 model is differentiated in float64
        self.dtype = np.dtype(keras.backend.standardize_dtype(model.inputs[0].dtype))
        self._compiled = {}

    def _scores(self, x, c):
        z = forward(self.model, x, self.rule)
        return ops.sum(z * c, axis=1)

    def _build(self, sample_shape, latent_dim):
        if self.backend == "tensorflow":
            import tensorflow as tf

            signature = [tf.TensorSpec((None, *sample_shape), self.dtype),
                         tf.TensorSpec((None, latent_dim), self.dtype)]

            @tf.function(input_signature=signature)
            def fn(x, c):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    s = self._scores(x, c)
                return s, tape.gradient(s, x)

            return lambda x, c: tuple(t.numpy() for t in fn(x, c))

        if self.backend == "jax":
            import jax
            import jax.numpy as jnp

            variables = list(self.model.variables)

            def total(values, x, c):
                with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                    s = self._scores(x, c)
                return jnp.sum(s), s

            grad = jax.jit(jax.value_and_grad(total, argnums=1, has_aux=True))

            def fn(x, c):
                (_, s), g = grad([v.value for v in variables], x, c)
                return np.asarray(s), np.asarray(g)

            return fn

        raise NotImplementedError(
            f"saliency needs the tensorflow or jax Keras backend, not {self.backend!r}"
        )

    def __call__(self, x: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores ``(N,)`` and gradients ``x.shape`` for samples ``x`` and vectors ``c`` (N, D)."""
        x = np.asarray(x, dtype=self.dtype)
        c = np.asarray(c, dtype=self.dtype)
        key = (x.shape[1:], c.shape[1])
        if key not in self._compiled:
            self._compiled[key] = self._build(*key)
        fn = self._compiled[key]
        n, chunk = len(x), self.chunk_size
        scores = np.empty(n, dtype=self.dtype)
        grads = np.empty_like(x)
        for start in range(0, n, chunk):
            xb, cb = x[start:start + chunk], c[start:start + chunk]
            m = len(xb)
            if self.backend == "jax" and m < chunk and n > chunk:
                # pad the last chunk so JAX reuses the program compiled for full chunks
                xb = np.concatenate([xb, np.zeros((chunk - m, *xb.shape[1:]), xb.dtype)])
                cb = np.concatenate([cb, np.zeros((chunk - m, cb.shape[1]), cb.dtype)])
            s, g = fn(xb, cb)
            scores[start:start + m] = s[:m]
            grads[start:start + m] = g[:m]
        return scores, grads
