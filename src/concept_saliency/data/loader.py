"""Batches from a sample store for ``Model.fit``, on every Keras backend.

:class:`BatchLoader` is a ``keras.utils.PyDataset`` (no tf.data), so it feeds
TensorFlow, JAX and PyTorch alike. When the selected samples fit in
``cache_bytes`` they are read once into memory and shuffled freely.

Otherwise it streams: the samples are grouped by the HDF5 chunk they lie in,
and each epoch shuffles the chunks, groups them into windows of about
``window_bytes`` and shuffles the samples within each window. A batch is then
served from one or two windows read as whole, contiguous chunks (each chunk
is decompressed once per epoch, never one random sample at a time), and at
most two windows are held in memory, whatever the size of the store.

Either way the order of epoch ``e`` is drawn from ``seed + e`` alone, so a run
resumed at epoch ``e`` sees the same batches as an uninterrupted one.

With ``raw=True`` a store of ``uint8`` images is served as ``uint8`` batches,
unscaled: a quarter of the bytes to copy and to send to the accelerator, and
no conversion on the host (converting to float32 was most of the loader's
time at 128x128); the model scales them (:class:`concept_saliency.model.VAE`
reads integer inputs as images scaled by 1/255). Float stores are served as
float32 either way.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import keras
import numpy as np

from .samples import SampleStore


class BatchLoader(keras.utils.PyDataset):
    def __init__(self, store: SampleStore, indices: np.ndarray, batch_size: int, *,
                 shuffle: bool = True, seed: int = 0, epoch: int = 0,
                 cache_bytes: int = 2 << 30, window_bytes: int = 128 << 20, raw: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        self.store = store
        self.indices = np.asarray(indices, dtype=np.int64)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = epoch
        #: uint8 batches, unscaled (only for a store of uint8 images scaled by 1/255)
        self.raw = bool(raw) and store.x.dtype == np.uint8 and np.isclose(store.scale, 1 / 255)
        per_sample = int(np.prod(store.sample_shape)) * (1 if self.raw else 4)
        if per_sample * len(self.indices) > cache_bytes:
            self._cache = None
        elif self.raw:
            self._cache = _read_rows(store.x, self.indices)
        else:
            self._cache = store.read(self.indices)
        if self._cache is None:
            chunk = store.x.chunks[0] if store.x.chunks else 256
            self._chunk = int(chunk)
            self._block_of = self.indices // self._chunk  # the chunk each sample lies in
            self._blocks = np.unique(self._block_of)
            stored = int(np.prod(store.sample_shape)) * store.x.dtype.itemsize
            self._per_window = max(1, int(window_bytes // (self._chunk * stored)))
            self._windows: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._order = self._epoch_order()

    @property
    def streaming(self) -> bool:
        return self._cache is None

    def _epoch_order(self) -> np.ndarray:
        n = len(self.indices)
        if self._cache is not None:
            positions = np.arange(n)
            if self.shuffle:
                np.random.default_rng(self.seed + self.epoch).shuffle(positions)
            return positions
        self._windows.clear()
        blocks = self._blocks.copy()
        rng = np.random.default_rng(self.seed + self.epoch)
        if self.shuffle:
            rng.shuffle(blocks)
        rank = np.empty(blocks.max() + 1 if len(blocks) else 0, dtype=np.int64)
        rank[blocks] = np.arange(len(blocks))
        # window of each sample, and the chunks of each window
        self._window_of = rank[self._block_of] // self._per_window
        self._window_blocks = [blocks[i:i + self._per_window]
                               for i in range(0, len(blocks), self._per_window)]
        within = rng.random(n) if self.shuffle else self.indices.astype(np.float64)
        return np.lexsort((within, self._window_of))

    def __len__(self) -> int:
        return math.ceil(len(self.indices) / self.batch_size)

    def _window(self, w: int) -> tuple[np.ndarray, np.ndarray]:
        """(sorted store indices, their uint8 rows) of window ``w``; at most two are kept."""
        if w in self._windows:
            self._windows.move_to_end(w)
            return self._windows[w]
        n = len(self.store)
        spans = [(int(b) * self._chunk, min((int(b) + 1) * self._chunk, n))
                 for b in np.sort(self._window_blocks[w])]
        keys = np.concatenate([np.arange(a, b) for a, b in spans])
        rows = np.concatenate([self.store.x[a:b] for a, b in spans])
        self.store.check_finite(rows)
        self._windows[w] = (keys, rows)
        while len(self._windows) > 2:
            self._windows.popitem(last=False)
        return keys, rows

    def __getitem__(self, i: int):
        pos = self._order[i * self.batch_size:(i + 1) * self.batch_size]
        if self._cache is not None:
            return self._cache[pos]
        wanted = self.indices[pos]
        out = np.empty((len(pos), *self.store.sample_shape), dtype=self.store.x.dtype)
        for w in np.unique(self._window_of[pos]):
            keys, rows = self._window(int(w))
            mine = self._window_of[pos] == w
            out[mine] = rows[np.searchsorted(keys, wanted[mine])]
        if self.raw:
            return out
        x = out.astype(np.float32)
        if self.store.scale != 1.0:
            x *= np.float32(self.store.scale)
        return x

    def on_epoch_end(self):
        self.epoch += 1
        self._order = self._epoch_order()


def _read_rows(x, indices: np.ndarray) -> np.ndarray:
    """Rows ``indices`` (any order, duplicates allowed) of an HDF5 dataset, as stored."""
    uniq, inverse = np.unique(indices, return_inverse=True)
    block = x[uniq] if len(uniq) else x[0:0]
    return block[inverse.reshape(-1)]
