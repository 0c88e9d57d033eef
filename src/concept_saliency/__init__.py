"""Concept saliency maps for deep generative models.

The package is split by concern; nothing here imports Keras, so a caller can
choose the Keras backend (``concept_saliency.backend.use_backend``) before the
first model module is imported.

- ``data``: synthetic demo data, image and spatial-transcriptomics inputs,
  the HDF5 sample store every model stage reads.
- ``model``: architecture presets and the variational autoencoder.
- ``training``, ``encoding``: fitting the VAE, latent means of every sample.
- ``concepts``: concept vectors, concept scores and how well they separate.
- ``saliency``: attribution of a concept score to the input, one class per method.
- ``evaluation``: scoring maps against known concept regions.
- ``rendering``: figures.
- ``artifacts``: versioned, provenance-carrying, atomically written outputs.
- ``stages``: one function per workflow stage (paths in, artifacts out).
"""

__version__ = "0.1.0"
