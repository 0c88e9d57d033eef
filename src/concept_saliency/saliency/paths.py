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
  (s'(a) + s'(b)) / 2|`` is the trapezoid's error there, measured rather than estimated.
  Half the steps go to equal cells (both ends included), the rest, in three rounds, to the
  midpoints of the cells with the largest error, per sample.
"""

from __future__ import annotations

from typing import Callable

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
    diff = x - baseline
    first = steps // 2 + 1
    alphas = np.tile(np.linspace(0.0, 1.0, first), (len(x), 1))
    scores, slopes, grads = _along(gradient, baseline, diff, c, alphas)
    extra = steps - first
    for add in (extra // ROUNDS + (r < extra % ROUNDS) for r in range(ROUNDS)):
        if add:
            new = _bisect_worst(alphas, scores, slopes, add)
            s2, d2, g2 = _along(gradient, baseline, diff, c, new)
            alphas, scores, slopes, grads = _sorted(np.concatenate([alphas, new], axis=1),
                                                   np.concatenate([scores, s2], axis=1),
                                                   np.concatenate([slopes, d2], axis=1),
                                                   np.concatenate([grads, g2], axis=1))
    cells = np.diff(alphas, axis=1)
    weights = np.zeros_like(alphas)
    weights[:, :-1] += cells / 2
    weights[:, 1:] += cells / 2
    integral = np.einsum("nk,nkd->nd", weights, grads.reshape(*weights.shape, -1)).reshape(diff.shape)
    return (diff * integral).astype(x.dtype, copy=False)


def _along(gradient, baseline, diff, c, alphas):
    """Scores ``(N, K)`` and slopes ``s' = grad . diff`` (float64) and gradients ``(N, K, ...)``
    at ``baseline + alphas diff``."""
    n, k = alphas.shape
    shape = (n, k) + (1,) * (diff.ndim - 1)
    points = baseline[:, None] + alphas.reshape(shape).astype(diff.dtype) * diff[:, None]
    s, g = gradient(points.reshape(n * k, *diff.shape[1:]), np.repeat(c, k, axis=0))
    g = g.reshape(n, k, *diff.shape[1:])
    slopes = np.einsum("nkd,nd->nk", g.reshape(n, k, -1).astype(np.float64), diff.reshape(n, -1).astype(np.float64))
    return s.reshape(n, k).astype(np.float64), slopes, g


def _bisect_worst(alphas, scores, slopes, add: int) -> np.ndarray:
    """The midpoints of each sample's ``add`` cells with the largest trapezoid error (``alphas``
    sorted; ties: the leftmost cell first)."""
    cells = np.diff(alphas, axis=1)
    error = np.abs(np.diff(scores, axis=1) - cells * (slopes[:, :-1] + slopes[:, 1:]) / 2)
    worst = np.argsort(-error, axis=1, kind="stable")[:, :add]
    left = np.take_along_axis(alphas, worst, axis=1)
    return left + np.take_along_axis(cells, worst, axis=1) / 2


def _sorted(alphas, *per_point):
    order = np.argsort(alphas, axis=1, kind="stable")
    out = [np.take_along_axis(alphas, order, axis=1)]
    for a in per_point:
        out.append(np.take_along_axis(a, order.reshape(order.shape + (1,) * (a.ndim - 2)), axis=1))
    return out
