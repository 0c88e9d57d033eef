"""Latent means of every sample (``latents.h5``, format ``csm.latents``).

The paper sampled ``z`` from the posterior, which made concept scores random;
here the encoder's deterministic mean is used throughout.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .artifacts import create_h5, numeric_dataset, open_h5
from .data.samples import SampleStore
from .progress import Progress

log = logging.getLogger(__name__)
FORMAT = "csm.latents"


def encode_store(latent, store: SampleStore, batch_size: int = 256) -> np.ndarray:
    """``(N, D)`` float32 latent means, streaming the store block by block (progress logged)."""
    return _encode_blocks(latent, store.iter_blocks(batch_size), len(store),
                          Progress("encoded", len(store), "samples"))


def latents(encoder, x, *, latent_output: str | int | None = None, batch_size: int = 256,
            progress: bool = False) -> np.ndarray:
    """``(N, D)`` deterministic latent means of the samples ``x`` (``(N, ...)``, as the encoder takes
    them) in batches; ``latent_output`` names the latent where the encoder has several outputs
    (``z_mean`` by default). ``progress``: a progress bar (in a notebook, tqdm's widget)."""
    from .model import latent_model
    from .progress import progress_bar

    model = latent_model(encoder, latent_output)
    x = np.asarray(x)
    dtype = np.dtype(model.inputs[0].dtype)
    blocks = ((s, x[s:s + batch_size].astype(dtype, copy=False)) for s in range(0, len(x), batch_size))
    with progress_bar(len(x), "encoding", "samples", enabled=progress) as bar:
        return _encode_blocks(model, blocks, len(x), bar)


def _encode_blocks(latent, blocks, total: int, progress) -> np.ndarray:
    """``(total, D)`` float32 latents of ``blocks`` (``(start, x)`` pairs); ``progress.update(n)``
    after each."""
    out = np.empty((total, int(latent.outputs[0].shape[-1])), dtype=np.float32)
    for start, x in blocks:
        z = np.asarray(latent.predict_on_batch(x), dtype=np.float32)
        out[start:start + len(z)] = z
        progress.update(len(z))
    return out


def write_latents(path, z: np.ndarray, ids, split) -> None:
    import h5py

    with create_h5(path, FORMAT) as f:
        f.create_dataset("z", data=z.astype(np.float32))
        f.create_dataset("ids", data=np.asarray(ids, dtype=object), dtype=h5py.string_dtype())
        f.create_dataset("split", data=np.asarray(split, dtype=np.int8))


@dataclass
class Latents:
    z: np.ndarray
    ids: list[str]
    split: np.ndarray


def read_latents(path) -> Latents:
    with open_h5(path, FORMAT) as f:
        ids = [s.decode() if isinstance(s, bytes) else s for s in f["ids"][()]]
        return Latents(numeric_dataset(f, "z", path)[()], ids, numeric_dataset(f, "split", path)[()])
