"""Attribution methods for concept scores, one class per method.

The methods of the original (DeepExplain as used by Brocki & Chung): vanilla
gradient, gradient x input, SmoothGrad, integrated gradients, guided
backpropagation, deconvnet, RectGrad, epsilon-LRP, DeepLIFT (rescale) and
occlusion. Every method attributes the concept score ``s(x) = c . z(x)`` of a latent
model ``z`` to the input ``x`` and shares one call::

    maps = IntegratedGradients(encoder, vectors).attribute(x, concept=0, steps=64)

``vectors`` is one concept vector ``(D,)`` or several ``(K, D)``; ``concept``
picks one for all samples or one per sample. Options are validated; unknown
options or values out of range raise :class:`~concept_saliency.errors.ConfigError`
naming the method and the option. All work is batched: path points, noisy and
occluded copies are pushed through one compiled function (:mod:`.autodiff`) in
chunks of ``chunk_size`` rows (:mod:`.batching`).

A method is one subclass of :class:`ConceptAttribution`: its ``name`` (which
registers it in :data:`METHODS`), its ``options``, the backward ``rule`` it
differentiates with (:mod:`.rules`; the plain gradient by default) and
``_attribute``.
"""

from __future__ import annotations

import difflib
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..progress import progress_bar
from .autodiff import ScoreGradient
from .batching import map_chunks
from .paths import RULES as INTEGRATION_RULES
from .paths import adaptive_path_integral, path_points
from .rules import DECONVNET, EPSILON, GRADIENT, GUIDED, RECTGRAD, RESCALE, Rule

#: method name -> class, in the order of definition (every subclass that sets ``name``)
METHODS: dict[str, type[ConceptAttribution]] = {}


@dataclass(frozen=True)
class Option:
    """A method option: its default, accepted types, a check of the value and the help shown
    when the check fails."""

    default: Any
    kind: type | tuple
    check: Callable[[Any], bool] = lambda v: True
    help: str = ""


class ConceptAttribution:
    """Base class: a latent model, concept vectors, and a backward rule.

    ``cls(model, concept_vectors, latent_output=None, chunk_size=64)``: ``model`` a Keras
    encoder (``latent_output`` picks its latent, see :func:`~concept_saliency.model.latent_model`),
    ``concept_vectors`` ``(D,)`` or ``(K, D)``. Raises ``ConfigError`` when the vectors'
    dimension is not the latent's, or when the model has a layer the method's rule cannot cross.
    """

    name: str = ""
    rule: Rule = GRADIENT
    options: dict[str, Option] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:  # a method, not a shared base class
            if cls.name in METHODS:
                raise ValueError(f"two saliency methods are named {cls.name!r}")
            METHODS[cls.name] = cls

    def __init__(self, model, concept_vectors, *, latent_output: str | int | None = None,
                 chunk_size: int = 64):
        from ..model import latent_model

        self.model = latent_model(model, latent_output)
        vectors = np.atleast_2d(np.asarray(concept_vectors, dtype=np.float64))
        latent_dim = int(self.model.outputs[0].shape[-1])
        if vectors.shape[1] != latent_dim:
            raise ConfigError(
                f"the concept vectors have {vectors.shape[1]} dimensions but the model's latent "
                f"'{self.model.name}' has {latent_dim}; were they made with another model?"
            )
        self.gradient = ScoreGradient(self.model, rule=self.rule, chunk_size=chunk_size,
                                      method=self.name)
        self.dtype = self.gradient.dtype
        self.vectors = vectors.astype(self.dtype)

    # -------------------------------------------------------------- options
    @classmethod
    def validate_options(cls, options: dict) -> dict:
        """``options`` completed with the defaults; ``ConfigError`` naming the method and the
        option for an unknown option or a value of the wrong type or out of range."""
        unknown = set(options) - set(cls.options)
        if unknown:
            known = ", ".join(cls.options) or "none"
            raise ConfigError(
                f"saliency method '{cls.name}': unknown option(s) {', '.join(sorted(unknown))}; "
                f"its options are: {known}"
            )
        out = {}
        for key, opt in cls.options.items():
            value = options.get(key, opt.default)
            if isinstance(value, bool) and opt.kind is not bool:
                ok = False  # True/False are ints in Python; never a valid count or level
            else:
                ok = isinstance(value, opt.kind) and opt.check(value)
            if not ok:
                raise ConfigError(
                    f"saliency method '{cls.name}', option '{key}': {value!r} is not valid ({opt.help})"
                )
            out[key] = value
        return out

    # -------------------------------------------------------------- API
    def attribute(self, x: np.ndarray, concept: int | np.ndarray = 0, *, progress: bool = False,
                  **options) -> np.ndarray:
        """Maps of samples ``x`` (a batch), shaped like ``x`` in the model's float type.

        ``concept``: the index of the concept vector, for all samples or one per sample;
        ``options``: the method's (see ``options``); ``progress``: show a progress bar over the
        samples (a widget in Jupyter). Raises ``ConfigError`` for bad options, inputs of the
        wrong rank or a concept index out of range.
        """
        opts = self.validate_options(options)
        x = np.asarray(x, dtype=self.dtype)
        if x.ndim != len(self.model.inputs[0].shape):
            raise ConfigError(f"expected inputs shaped {self.model.inputs[0].shape}, got {x.shape}")
        idx = np.broadcast_to(np.asarray(concept, dtype=np.int64), (len(x),))
        if idx.size and (idx.min() < 0 or idx.max() >= len(self.vectors)):
            raise ConfigError(f"concept index out of range (there are {len(self.vectors)} concepts)")
        if len(x) == 0:
            return np.zeros_like(x)
        c = self.vectors[idx]
        if not progress:
            return self._attribute(x, c, **opts).astype(self.dtype, copy=False)
        with progress_bar(len(x), type(self).__name__, unit="map") as bar:
            def block(xb, cb):
                maps = self._attribute(xb, cb, **opts)
                bar.update(len(xb))
                return maps

            return map_chunks(block, (x, c), self.gradient.chunk_size).astype(self.dtype, copy=False)

    def scores(self, x: np.ndarray, concept: int | np.ndarray = 0) -> np.ndarray:
        """Concept scores ``c . z(x)`` of ``x`` (a compiled forward pass)."""
        x = np.asarray(x, dtype=self.dtype)
        idx = np.broadcast_to(np.asarray(concept, dtype=np.int64), (len(x),))
        return self.gradient.scores(x, self.vectors[idx])

    def _attribute(self, x, c, **opts) -> np.ndarray:
        """Maps of ``x`` (N >= 1 samples) for concept vectors ``c`` (N, D), options validated;
        by default the gradient under the method's rule."""
        return self.gradient(x, c)[1]


class VanillaGradient(ConceptAttribution):
    """d s / d x (Simonyan et al. 2014)."""

    name = "vanilla_gradient"


class GradientXInput(ConceptAttribution):
    """x * d s / d x (Shrikumar et al. 2016)."""

    name = "gradient_x_input"

    def _attribute(self, x, c):
        return x * self.gradient(x, c)[1]


class SmoothGrad(ConceptAttribution):
    """Mean gradient over noisy copies of x (Smilkov et al. 2017).

    Noise s.d. is ``noise_level`` times the value range (max - min) of each sample.
    """

    name = "smoothgrad"
    options = {
        "samples": Option(32, int, lambda v: v >= 1, "number of noisy copies, >= 1"),
        "noise_level": Option(0.15, (int, float), lambda v: v >= 0, "noise s.d. / value range, >= 0"),
        "seed": Option(0, int, lambda v: v >= 0, "random seed, >= 0"),
    }

    def _attribute(self, x, c, samples, noise_level, seed):
        axes = tuple(range(1, x.ndim))
        sd = noise_level * (x.max(axis=axes, keepdims=True) - x.min(axis=axes, keepdims=True))

        def mean_gradient(xb, cb, sdb):
            noise = np.concatenate([_sample_noise(xi, samples, seed) for xi in xb]).astype(x.dtype)
            noisy = np.repeat(xb, samples, axis=0) + noise * np.repeat(sdb, samples, axis=0)
            g = self.gradient(noisy, np.repeat(cb, samples, axis=0))[1]
            return g.reshape(len(xb), samples, *x.shape[1:]).mean(axis=1)

        # the noisy copies of a few samples at a time: memory is bounded by chunk_size
        return map_chunks(mean_gradient, (x, c, sd), max(1, self.gradient.chunk_size // samples),
                          pad=self.gradient.pad)


def _sample_noise(x: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """Standard normal noise drawn from (seed, the sample's content): a sample gets the same
    noise whatever batch it is in, so batched maps equal one-at-a-time maps."""
    key = zlib.crc32(np.ascontiguousarray(x).tobytes())
    return np.random.default_rng([seed, key]).standard_normal((samples, *x.shape))


def _baseline(x: np.ndarray, baseline) -> np.ndarray:
    if isinstance(baseline, str):
        if baseline == "zeros":
            return np.zeros_like(x)
        if baseline == "mean":  # per-sample mean value (a flat grey image)
            return np.broadcast_to(x.mean(axis=tuple(range(1, x.ndim)), keepdims=True), x.shape).copy()
        raise ConfigError(f"unknown baseline {baseline!r}; use 'zeros', 'mean' or a number")
    return np.full_like(x, float(baseline))


def _baseline_option():
    return Option("zeros", (str, int, float), lambda v: not isinstance(v, str) or v in ("zeros", "mean"),
                  "'zeros', 'mean' or a number")


class IntegratedGradients(ConceptAttribution):
    """(x - x') * integral of d s / d x along the straight path from x' to x (Sundararajan et al. 2017).

    ``steps`` gradients per sample, placed by the ``integration`` rule (:mod:`.paths`): by
    default ``adaptive``, the trapezoid rule on cells bisected where the score's path bends
    (its completeness error, ``|sum of the map - (s(x) - s(x'))|``, is measured on every cell);
    ``riemann_middle``, ``trapezoid`` and ``gausslegendre`` place them alike for every sample.
    The adaptive rule keeps up to ``4 * chunk_size`` gradients until their weights are known;
    the fixed rules sum them in the compiled function.
    """

    name = "integrated_gradients"
    options = {
        "steps": Option(64, int, lambda v: v >= 2, "number of gradients per sample, >= 2"),
        "baseline": _baseline_option(),
        "integration": Option("adaptive", str, lambda v: v in INTEGRATION_RULES,
                              "one of " + ", ".join(f"'{r}'" for r in INTEGRATION_RULES)),
    }

    def _attribute(self, x, c, steps, baseline, integration):
        base = _baseline(x, baseline)
        if integration == "adaptive":
            group = max(1, 4 * self.gradient.chunk_size // steps)  # samples whose gradients are kept
            return map_chunks(lambda xb, bb, cb: adaptive_path_integral(self.gradient, xb, bb, cb, steps),
                              (x, base, c), group, pad=self.gradient.pad)
        alphas, weights = path_points(steps, integration)
        # path points made and summed in the compiled function: only inputs and maps cross
        return self.gradient.path_integral(x, base, c, alphas, weights)


class GuidedBackprop(ConceptAttribution):
    """Gradient with ReLUs passing only positive gradients at positive inputs (Springenberg et al. 2015)."""

    name = "guided_backprop"
    rule = GUIDED


class Deconvnet(ConceptAttribution):
    """Gradient with ReLUs passing the positive part of the gradient, whatever the input (Zeiler & Fergus 2014)."""

    name = "deconvnet"
    rule = DECONVNET


class RectGrad(ConceptAttribution):
    """Rectified gradient (Kim et al. 2019), as the original computed it.

    At every ReLU the gradient passes only where the importance ``a * g``
    (activation times gradient) exceeds its ``percentile`` over the layer (per
    sample); the map is the input times this gradient. The original's
    "padding trick" (zeroing the border of gradients at 3x3 convolutions) is
    not applied. Other nonlinearities keep their gradient.
    """

    name = "rectgrad"
    rule = RECTGRAD
    options = {
        "percentile": Option(95, (int, float), lambda v: 0 <= v < 100,
                             "importance percentile below which the gradient is cut, in [0, 100)"),
    }

    def _attribute(self, x, c, percentile):
        return x * self.gradient(x, c, param=float(percentile))[1]


class EpsilonLRP(ConceptAttribution):
    """Layer-wise relevance propagation with the epsilon rule (Bach et al. 2015).

    Computed as the input times a modified gradient (Ancona et al. 2018): at
    every nonlinearity ``y = f(u)`` the gradient is multiplied by
    ``y / (u + epsilon * sign(u))`` instead of ``f'(u)``; linear layers (a
    convolution with the batch normalisation after it counts as one) keep
    their weights. For a bias-free ReLU network the relevances sum to the
    score as epsilon -> 0.
    """

    name = "epsilon_lrp"
    rule = EPSILON
    options = {
        "epsilon": Option(1e-4, (int, float), lambda v: v > 0, "stabiliser, > 0"),
    }

    def _attribute(self, x, c, epsilon):
        return x * self.gradient(x, c, param=float(epsilon))[1]


class DeepLift(ConceptAttribution):
    """DeepLIFT with the rescale rule (Shrikumar et al. 2017).

    The gradient with every nonlinearity's derivative replaced by the secant
    slope ``(f(u) - f(u')) / (u - u')`` between the sample and the
    ``baseline`` (reference) input, times ``x - baseline``. The map sums to
    ``s(x) - s(baseline)`` exactly for networks of affine layers and
    elementwise nonlinearities (max pooling keeps its gradient, as in the original).
    """

    name = "deeplift"
    rule = RESCALE
    options = {"baseline": _baseline_option()}

    def _attribute(self, x, c, baseline):
        base = _baseline(x, baseline)
        return (x - base) * self.gradient(x, c, reference=base)[1]


def _pair(value) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


def _window_ok(v) -> bool:
    v = _pair(v)
    return 1 <= len(v) <= 3 and all(isinstance(i, int) and not isinstance(i, bool) and i >= 1 for i in v)


class Occlusion(ConceptAttribution):
    """Change of the concept score when a window of the input is filled (Zeiler & Fergus 2014).

    A ``window`` (an int, or one size per spatial axis) slides over the
    spatial axes with ``stride`` (all channels at once; windows are added at
    the far edges so every element is covered). Each window's score drop
    ``s(x) - s(x with the window set to fill_value)`` is shared among its
    elements, and an element's attribution is the mean of its shares over the
    windows covering it (the original's normalisation): with ``stride ==
    window`` the map sums to the total of the drops. Forward passes only,
    batched in chunks.
    """

    name = "occlusion"
    options = {
        "window": Option(8, (int, list, tuple), _window_ok, "window size: an int >= 1 or one per axis"),
        "stride": Option(4, (int, list, tuple), _window_ok, "window step: an int >= 1 or one per axis"),
        "fill_value": Option(0.0, (int, float), lambda v: np.isfinite(v), "value of occluded inputs"),
    }

    def _attribute(self, x, c, window, stride, fill_value):
        spatial = x.shape[1:-1] if x.ndim >= 3 else x.shape[1:]
        windows = _windows(spatial, _pair(window), _pair(stride), self.name)

        def occluded_scores(pairs):  # (sample, window) pairs, numbered sample-major
            sample, win = np.divmod(pairs, len(windows))
            copies = x[sample]
            for k, w in enumerate(win):
                copies[(k, *windows[w])] = fill_value
            return self.gradient.scores(copies, c[sample])

        # a chunk of occluded copies at a time: memory bounded by chunk_size
        occluded = map_chunks(occluded_scores, (np.arange(len(x) * len(windows)),), self.gradient.chunk_size,
                              pad=self.gradient.pad)
        drops = self.gradient.scores(x, c)[:, None] - occluded.reshape(len(x), len(windows))
        heat = np.zeros((len(x), *spatial))
        count = np.zeros(spatial)
        for w, sl in enumerate(windows):
            n_elems = np.prod([s_.stop - s_.start for s_ in sl])
            heat[(slice(None), *sl)] += drops[:, w].reshape(-1, *(1,) * len(spatial)) / n_elems
            count[sl] += 1
        heat /= count
        if x.ndim >= 3:  # the same share for every channel of an element
            heat = np.repeat(heat[..., None], x.shape[-1], axis=-1) / x.shape[-1]
        return heat


def _windows(shape, window, stride, method) -> list[tuple[slice, ...]]:
    """Slices of every window position (the last one flush with each far edge)."""
    nd = len(shape)
    if len(window) == 1:
        window = window * nd
    if len(stride) == 1:
        stride = stride * nd
    if len(window) != nd or len(stride) != nd:
        raise ConfigError(f"saliency method '{method}': window and stride need 1 or {nd} sizes for "
                          f"inputs with {nd} spatial axes")
    if any(w > s for w, s in zip(window, shape)):
        raise ConfigError(f"saliency method '{method}', option 'window': {list(window)} is larger than "
                          f"the input {list(shape)}")
    starts = []
    for size, w, st in zip(shape, window, stride):
        pos = list(range(0, size - w + 1, st))
        if pos[-1] != size - w:
            pos.append(size - w)
        starts.append(pos)
    return [tuple(slice(p, p + w) for p, w in zip(corner, window))
            for corner in np.array(np.meshgrid(*starts, indexing="ij")).reshape(nd, -1).T]


def get_method(name: str) -> type[ConceptAttribution]:
    """The method class of ``name``; ``ConfigError`` naming the closest method (a misspelling,
    another case, spaces or dashes for underscores) and listing them all for an unknown name."""
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        pass
    key = str(name).strip().lower().replace("-", "_").replace(" ", "_")
    by_class = {cls.__name__.lower(): method for method, cls in METHODS.items()}
    close = ([key] if key in METHODS else [by_class[key.replace("_", "")]]
             if key.replace("_", "") in by_class
             else difflib.get_close_matches(key, list(METHODS), n=1, cutoff=0.6))
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ConfigError(f"unknown saliency method {name!r}; {hint}available: {', '.join(METHODS)}")


def attribute(model, concept_vectors, x, method: str = "vanilla_gradient", *, concept=0,
              latent_output=None, chunk_size: int = 64, progress: bool = False, **options) -> np.ndarray:
    """One call for any method: ``attribute(encoder, c, x, method="integrated_gradients", steps=64)``;
    ``progress=True`` shows a progress bar over the samples."""
    cls = get_method(method)
    return cls(model, concept_vectors, latent_output=latent_output,
               chunk_size=chunk_size).attribute(x, concept=concept, progress=progress, **options)
