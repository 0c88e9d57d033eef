"""Concept saliency maps for deep generative models.

In a notebook::

    import concept_saliency as csm

    encoder = csm.load_model("encoder.keras")                 # safe mode
    z = csm.latents(encoder, x, progress=True)               # deterministic latent means
    smiling = csm.concept_from_labels(z, labels)             # mean of positives - negatives
    maps = csm.attribute(encoder, smiling, x, method="integrated_gradients", steps=64)
    csm.plot_attribution(maps[0], x[0])                      # a Matplotlib figure

The main verbs are importable from here and loaded on first use, so importing the package
imports no Keras: a caller may still choose the backend (``KERAS_BACKEND``, or
:func:`concept_saliency.backend.use_backend`). The modules, by concern:

- ``saliency``: attribution of a concept score to the input, one class per method;
- ``concept_vectors``: concept vectors, concept scores and how well they separate;
- ``model``, ``presets``, ``training``, ``encoding``: the VAE, fitting it, latent means;
- ``plotting``, ``plotting_spatial``: figures (returned, never forced on a backend);
- ``data``: inputs (images, CelebA, spatial transcriptomics) and the sample store;
- ``evaluation``: scoring maps (deletion/insertion, randomisation, ground truth);
- ``artifacts``: versioned, provenance-carrying, atomically written outputs;
- ``stages``: one function per workflow stage, and the runner.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: name -> module it comes from (imported on first access)
_EXPORTS = {
    # attribution
    "attribute": "saliency", "get_method": "saliency", "METHODS": "saliency",
    "ConceptAttribution": "saliency", "VanillaGradient": "saliency", "GradientXInput": "saliency",
    "SmoothGrad": "saliency", "IntegratedGradients": "saliency", "GuidedBackprop": "saliency",
    "Deconvnet": "saliency", "RectGrad": "saliency", "EpsilonLRP": "saliency", "DeepLift": "saliency",
    "Occlusion": "saliency",
    # concepts
    "concept_from_labels": "concept_vectors", "concept_from_group": "concept_vectors",
    "concept_scores": "concept_vectors", "auroc": "concept_vectors",
    "correlated_with": "concept_vectors",
    # models
    "load_model": "model", "latent_model": "model", "latents": "encoding",
    # figures
    "plot_attribution": "plotting", "plot_image_maps": "plotting", "save_figure": "plotting",
    "plot_tissue": "plotting_spatial", "plot_concept_on_tissue": "plotting_spatial",
    # artifacts of the workflow
    "read_spatial_maps": "data.spatial", "read_concepts": "concept_vectors",
    "read_latents": "encoding", "read_maps": "saliency_maps",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'concept_saliency' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))
