"""Batches from a sample store for ``Model.fit``, on every Keras backend.

:class:`BatchLoader` is a ``keras.utils.PyDataset`` (no tf.data), so it feeds
TensorFlow, JAX and PyTorch alike. When the selected samples fit in
``cache_bytes`` they are read once into memory; otherwise each batch is read
from HDF5. The shuffle order of epoch ``e`` is drawn from ``seed + e``, so a
run resumed at epoch ``e`` sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from .samples import SampleStore


class BatchLoader(keras.utils.PyDataset):
    def __init__(self, store: SampleStore, indices: np.ndarray, batch_size: int, *,
                 shuffle: bool = True, seed: int = 0, epoch: int = 0,
                 cache_bytes: int = 2 << 30, **kwargs):
        super().__init__(**kwargs)
        self.store = store
        self.indices = np.asarray(indices, dtype=np.int64)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = epoch
        per_sample = int(np.prod(store.sample_shape)) * 4
        self._cache = store.read(self.indices) if per_sample * len(self.indices) <= cache_bytes else None
        self._order = self._epoch_order()

    def _epoch_order(self) -> np.ndarray:
        positions = np.arange(len(self.indices))
        if self.shuffle:
            np.random.default_rng(self.seed + self.epoch).shuffle(positions)
        return positions

    def __len__(self) -> int:
        return math.ceil(len(self.indices) / self.batch_size)

    def __getitem__(self, i: int):
        pos = self._order[i * self.batch_size:(i + 1) * self.batch_size]
        if self._cache is not None:
            return self._cache[pos]
        return self.store.read(self.indices[pos])

    def on_epoch_end(self):
        self.epoch += 1
        self._order = self._epoch_order()
