"""Integrated gradients' path integral: the quadrature rules.

The map of integrated gradients is ``(x - x') * integral_0^1 grad s(x' + alpha (x - x')) d alpha``.
A rule picks the positions ``alpha`` of the ``steps`` gradients and their weights:

- fixed rules (:func:`path_points`), the same positions for every sample, summed inside the
  compiled function: ``riemann_middle`` (midpoints of equal cells), ``trapezoid`` (equal
  cells, both ends), ``gausslegendre`` (exact for polynomials of degree ``2 steps - 1``);
- ``adaptive`` (:func:`adaptive_path_integral`): the trapezoid rule on cells bisected where
  the path bends. Along the path the score's derivative ``s'(alpha) = grad s . (x - x')``
  of a ReLU network is piecewise constant; on a cell ``[a, b]`` the exact integral of ``s'``
  is ``s(b) - s(a)`` (the scores come with the gradients), so ``|s(b) - s(a) - (b - a)
  (s'(a) + s'(b)) / 2|`` is the trapezoid's completeness error on that cell, measured rather
  than estimated.
  Half the steps go to equal cells (both ends included), the rest, in three rounds, to the
  midpoints of the cells with the largest error, per sample.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import ConfigError

FIXED_RULES = ("riemann_middle", "trapezoid", "gausslegendre")
RULES = ("adaptive",) + FIXED_RULES
#: rounds of bisection of the adaptive rule
ROUNDS = 3


def path_points(steps: int, integration: str) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``alpha`` in [0, 1] and weights (summing to 1) of a fixed rule with ``steps``
    points; ``ConfigError`` for an unknown rule (``adaptive`` has no fixed points)."""
    if integration == "gausslegendre":
        a, w = np.polynomial.legendre.leggauss(steps)
        return (a + 1) / 2, w / 2
    if integration == "trapezoid":
        a = np.linspace(0, 1, steps)
        w = np.full(steps, 1.0 / (steps - 1))
        w[[0, -1]] /= 2
        return a, w
    if integration == "riemann_middle":
        return (np.arange(steps) + 0.5) / steps, np.full(steps, 1.0 / steps)
    raise ConfigError(f"unknown integration {integration!r}; use one of {', '.join(FIXED_RULES)}")


def adaptive_path_integral(gradient: Callable, x: np.ndarray, baseline: np.ndarray, c: np.ndarray,
                           steps: int) -> np.ndarray:
    """Integrated-gradients maps of ``x`` (``N`` samples) by the adaptive rule, ``steps >= 2``
    gradients per sample.

    ``gradient(points, c)`` gives the scores ``(M,)`` and gradients ``points.shape`` of ``M``
    points with their concept vectors (a :class:`~.autodiff.ScoreGradient`). All the gradients
    of the ``N`` samples are kept until their weights are known: the caller bounds ``N``.
    Returns maps shaped like ``x`` in its float type.
    """
    n = len(x)
    diff = (x - baseline).reshape(n, -1)
    first = steps // 2 + 1
    alphas = np.zeros((n, steps))  # each sample's positions, in the order they were evaluated
    scores, slopes = np.zeros((n, steps)), np.zeros((n, steps))
    grads = np.empty((n, steps, diff.shape[1]), dtype=x.dtype)
    alphas[:, :first] = np.linspace(0.0, 1.0, first)
    done = 0
    extra = steps - first
    for add in [first] + [extra // ROUNDS + (r < extra % ROUNDS) for r in range(ROUNDS)]:
        if not add:
            continue
        if done:  # bisect the worst cells of the positions so far
            alphas[:, done:done + add] = _bisect_worst(alphas[:, :done], scores[:, :done], slopes[:, :done], add)
        new = slice(done, done + add)
        points = baseline.reshape(n, 1, -1) + alphas[:, new, None].astype(x.dtype) * diff[:, None]
        s, g = gradient(points.reshape(n * add, *x.shape[1:]), np.repeat(c, add, axis=0))
        grads[:, new] = g.reshape(n, add, -1)
        scores[:, new] = s.reshape(n, add)
        slopes[:, new] = np.matmul(grads[:, new], diff[:, :, None])[..., 0]  # s' = grad . (x - x')
        done += add
    weights = _trapezoid_weights(alphas)
    return (diff * np.matmul(weights[:, None, :].astype(x.dtype), grads)[:, 0]).reshape(x.shape)


def _bisect_worst(alphas, scores, slopes, add: int) -> np.ndarray:
    """The midpoints of each sample's ``add`` cells with the largest trapezoid error (ties: the
    leftmost cell first); the positions in any order."""
    order = np.argsort(alphas, axis=1, kind="stable")
    a, s, d = (np.take_along_axis(v, order, axis=1) for v in (alphas, scores, slopes))
    cells = np.diff(a, axis=1)
    error = np.abs(np.diff(s, axis=1) - cells * (d[:, :-1] + d[:, 1:]) / 2)
    worst = np.argsort(-error, axis=1, kind="stable")[:, :add]
    return np.take_along_axis(a, worst, axis=1) + np.take_along_axis(cells, worst, axis=1) / 2


def _trapezoid_weights(alphas: np.ndarray) -> np.ndarray:
    """The trapezoid rule's weight of each position (rows in any order)."""
    order = np.argsort(alphas, axis=1, kind="stable")
    cells = np.diff(np.take_along_axis(alphas, order, axis=1), axis=1)
    sorted_weights = np.zeros_like(alphas)
    sorted_weights[:, :-1] += cells / 2
    sorted_weights[:, 1:] += cells / 2
    weights = np.empty_like(alphas)
    np.put_along_axis(weights, order, sorted_weights, axis=1)
    return weights
