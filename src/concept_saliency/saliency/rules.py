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

from dataclasses import dataclass
from typing import Any

from keras import ops


@dataclass(frozen=True)
class Site:
    """What a backward step may read at one nonlinearity ``y = f(u)`` (tensors shaped like ``u``).

    ``param``: the rule's scalar parameter (a 0-d tensor); ``u_ref``, ``y_ref``: the
    reference inputs' values at this site (paired rules; otherwise ``u`` and ``y``);
    ``slope``: ``f'`` at the midpoint
    of ``u`` and ``u_ref`` (paired rules at non-ReLU sites; otherwise ``y``); ``relu``:
    whether ``f`` is a plain ReLU.
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
        positive = ops.relu(g)
        return positive * ops.cast(site.u > 0, g.dtype) if self.gate_on_input else positive


@dataclass(frozen=True)
class Rectified(Rule):
    """RectGrad (Kim et al. 2019): ``g`` passes where the importance ``y * g`` exceeds its
    ``param``-th percentile over the layer, per sample (``param`` in [0, 100))."""

    def backward(self, g, site):
        importance = site.y * g
        return g * ops.cast(importance > _per_sample_quantile(importance, site.param / 100.0), g.dtype)


@dataclass(frozen=True)
class Epsilon(Rule):
    """Epsilon-LRP (Bach et al. 2015) as a modified gradient: ``g * f(u) / (u + epsilon sign u)``
    (``param`` = epsilon)."""

    sites: str = "all"

    def backward(self, g, site):
        sign = ops.where(site.u >= 0, ops.ones_like(site.u), -ops.ones_like(site.u))
        return g * site.y / (site.u + site.param * sign)


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
        du = site.u - site.u_ref
        far = ops.abs(du) > RESCALE_TOLERANCE
        secant = (site.y - site.y_ref) / ops.where(far, du, ops.ones_like(du))
        near = ops.cast((site.u + site.u_ref) > 0, g.dtype) if site.relu else site.slope
        return g * ops.where(far, secant, near)


def _per_sample_quantile(t, q):
    flat = ops.reshape(t, (ops.shape(t)[0], -1))
    return ops.reshape(ops.quantile(flat, q, axis=1), (-1,) + (1,) * (len(t.shape) - 1))


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
