"""Concept saliency: attribution of a concept score ``c . z(x)`` to the input ``x``.

``attribute(model, vectors, x, method=...)`` or one class per method
(``VanillaGradient``, ``GradientXInput``, ``SmoothGrad``, ``IntegratedGradients``,
``GuidedBackprop``, ``Deconvnet``, ``RectGrad``, ``EpsilonLRP``, ``DeepLift``,
``Occlusion``; :data:`METHODS` by name), each with one batched ``attribute`` call.

Modules: :mod:`.methods` (the methods and their options), :mod:`.rules` (backward
rules of the modified gradients), :mod:`.graph` (running a model with a rule at its
nonlinearities), :mod:`.autodiff` (compiled scores and gradients), :mod:`.batching`
(chunks of rows), :mod:`.strided_conv` (a faster input gradient of strided convolutions
on TensorFlow).
"""

from .methods import (  # noqa: F401
    METHODS,
    ConceptAttribution,
    Deconvnet,
    DeepLift,
    EpsilonLRP,
    GradientXInput,
    GuidedBackprop,
    IntegratedGradients,
    Occlusion,
    RectGrad,
    SmoothGrad,
    VanillaGradient,
    attribute,
    get_method,
)
