"""Concept saliency: attribution of a concept score ``c . z(x)`` to the input ``x``.

``attribute(model, vectors, x, method=...)`` or one class per method
(``VanillaGradient``, ``GradientXInput``, ``SmoothGrad``, ``IntegratedGradients``,
``GuidedBackprop``, ``Deconvnet``), each with one batched ``attribute`` call.
"""

from .methods import (  # noqa: F401
    METHODS,
    ConceptAttribution,
    Deconvnet,
    GradientXInput,
    GuidedBackprop,
    IntegratedGradients,
    SmoothGrad,
    VanillaGradient,
    attribute,
    get_method,
)
