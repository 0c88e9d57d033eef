"""Concept saliency: attribution of a concept score ``c . z(x)`` to the input ``x``.

``attribute(model, vectors, x, method=...)`` or one class per method
(``VanillaGradient``, ``GradientXInput``, ``SmoothGrad``, ``IntegratedGradients``,
``GuidedBackprop``, ``Deconvnet``, ``RectGrad``, ``EpsilonLRP``, ``DeepLift``,
``Occlusion``), each with one batched ``attribute`` call.
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
