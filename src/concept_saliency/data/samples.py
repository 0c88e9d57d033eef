"""The sample store: the one HDF5 layout every model stage reads.

``samples.h5`` (format ``csm.samples``) holds

- ``x``: ``(N, H, W, C)`` inputs, ``uint8`` images (scaled by 1/255 on read)
  or ``float32`` values already in [0, 1] (gene images), chunked along N;
- ``ids``: the sample names (image ids, gene names), UTF-8;
- ``split``: ``(N,)`` int8, 0 = training, 1 = validation (held out);
- optionally ``labels``: ``(N, A)`` int8 in {0, 1} with ``label_names``;
- optionally ``boxes``: ``(N, R, 4)`` float32 regions of each sample, ``(x0, y0, x1, y1)`` in
  its pixels (NaN where a sample has none), with ``box_names``: CelebA's face parts from its
  landmarks, what maps are scored against, read by :class:`.regions.RegionStore` (regions
  given with a user's images are packed apart, :mod:`.regions`).

Images (CelebA, the synthetic shapes, a user's folder) and spatial
transcriptomics genes both end up here, so training, encoding, concepts and
saliency do not care where samples came from.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from ..artifacts import create_h5, numeric_dataset, open_h5
from ..errors import InputDataError

FORMAT = "csm.samples"
TRAIN, VALIDATION = 0, 1


def _str_dtype():
    import h5py

    return h5py.string_dtype("utf-8")


def assign_split(n: int, validation_fraction: float, seed: int) -> np.ndarray:
    """Deterministic random hold-out: ``round(n * fraction)`` samples get VALIDATION."""
    split = np.full(n, TRAIN, dtype=np.int8)
    n_val = int(round(n * validation_fraction))
    if n_val:
        rng = np.random.default_rng(seed)
        split[rng.choice(n, size=n_val, replace=False)] = VALIDATION
    return split


@contextlib.contextmanager
def create_sample_store(
    path: str | os.PathLike,
    n: int,
    sample_shape: Sequence[int],
    dtype: str | np.dtype,
    ids: Sequence[str],
    split: np.ndarray,
    labels: np.ndarray | None = None,
    label_names: Sequence[str] | None = None,
    attrs: dict | None = None,
    chunk_samples: int = 256,
):
    """Create ``samples.h5`` atomically; yields the ``x`` dataset to fill in blocks."""
    dtype = np.dtype(dtype)
    if dtype not in (np.uint8, np.float32):
        raise ValueError("samples must be uint8 images or float32 values in [0, 1]")
    if len(ids) != n or len(split) != n:
        raise ValueError("ids and split must have one entry per sample")
    size = n * int(np.prod(sample_shape)) * dtype.itemsize  # at most: before compression
    with create_h5(path, FORMAT, expected_bytes=size) as f:
        chunks = (max(1, min(chunk_samples, n)), *sample_shape)
        x = f.create_dataset(
            "x", shape=(n, *sample_shape), dtype=dtype, chunks=chunks,
            compression="lzf" if dtype == np.uint8 else None,
        )
        x.attrs["value_scale"] = 1.0 / 255.0 if dtype == np.uint8 else 1.0
        f.create_dataset("ids", data=np.asarray(ids, dtype=object), dtype=_str_dtype())
        f.create_dataset("split", data=np.asarray(split, dtype=np.int8))
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != (n, len(label_names)):
                raise ValueError("labels must be (N, number of label names)")
            f.create_dataset("labels", data=labels.astype(np.int8))
            f.create_dataset("label_names", data=np.asarray(label_names, dtype=object),
                             dtype=_str_dtype())
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
        yield x


class SampleAppender:
    """Appends samples to a store whose size is not known up front (see :func:`append_sample_store`).

    Rows are buffered until a whole HDF5 chunk is ready, so every write fills
    whole chunks; memory holds at most one chunk plus the block being appended.
    """

    def __init__(self, x, label_names: Sequence[str] | None):
        self.x = x
        self.label_names = list(label_names) if label_names else None
        self.ids: list[str] = []
        self._labels: list[np.ndarray] = []
        self._pending: list[np.ndarray] = []
        self._n_pending = 0
        self.finished = False

    def __len__(self) -> int:
        return len(self.ids)

    def append(self, x: np.ndarray, ids: Sequence[str], labels: np.ndarray | None = None) -> None:
        if len(x) != len(ids):
            raise ValueError("one id per sample")
        if (labels is None) != (self.label_names is None):
            raise ValueError("give labels exactly when the store has label names")
        if not len(x):
            return
        self._pending.append(np.asarray(x, dtype=self.x.dtype))
        self._n_pending += len(x)
        self.ids += list(ids)
        if labels is not None:
            self._labels.append(np.asarray(labels, dtype=np.int8))
        chunk = self.x.chunks[0]
        if self._n_pending >= chunk:
            self._flush(self._n_pending - self._n_pending % chunk)

    def _flush(self, n: int) -> None:
        if not n:
            return
        rows = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        start = self.x.shape[0]
        self.x.resize(start + n, axis=0)
        self.x[start:start + n] = rows[:n]
        rest = rows[n:]
        self._pending = [rest] if len(rest) else []
        self._n_pending = len(rest)

    def finish(self, split: np.ndarray, boxes: np.ndarray | None = None,
               box_names: Sequence[str] | None = None) -> None:
        """Write the remaining rows, the ids, the split (one per appended sample), the labels and
        the ``boxes`` of named regions, if any."""
        self._flush(self._n_pending)
        f = self.x.file
        split = np.asarray(split, dtype=np.int8)
        if split.shape != (len(self.ids),):
            raise ValueError("split must have one entry per appended sample")
        f.create_dataset("ids", data=np.asarray(self.ids, dtype=object), dtype=_str_dtype())
        f.create_dataset("split", data=split)
        if self.label_names is not None:
            labels = (np.concatenate(self._labels) if self._labels
                      else np.zeros((0, len(self.label_names)), np.int8))
            f.create_dataset("labels", data=labels)
            f.create_dataset("label_names", data=np.asarray(self.label_names, dtype=object),
                             dtype=_str_dtype())
        if boxes is not None:
            write_boxes(f, boxes, box_names, len(self.ids))
        self.finished = True


def write_boxes(f, boxes: np.ndarray, names: Sequence[str], n: int) -> None:
    """The ``boxes`` and ``box_names`` datasets of an open store of ``n`` samples."""
    boxes = np.asarray(boxes, dtype=np.float32)
    if boxes.shape != (n, len(names), 4):
        raise ValueError("boxes must be (N, number of box names, 4)")
    f.create_dataset("boxes", data=boxes)
    f.create_dataset("box_names", data=np.asarray(list(names), dtype=object), dtype=_str_dtype())


@contextlib.contextmanager
def append_sample_store(path: str | os.PathLike, sample_shape: Sequence[int], dtype,
                        label_names: Sequence[str] | None = None, attrs: dict | None = None,
                        chunk_samples: int = 256, compression: str | None = "lzf"):
    """Create ``samples.h5`` atomically when the number of samples is not known in advance.

    Yields a :class:`SampleAppender`; call ``append`` per block and ``finish(split)``
    before the block ends, else nothing is written. ``compression`` applies to uint8
    images (``None`` where it gains little, e.g. pixels decoded from JPEG).
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.uint8, np.float32):
        raise ValueError("samples must be uint8 images or float32 values in [0, 1]")
    with create_h5(path, FORMAT) as f:
        x = f.create_dataset(
            "x", shape=(0, *sample_shape), maxshape=(None, *sample_shape), dtype=dtype,
            chunks=(chunk_samples, *sample_shape),
            compression=compression if dtype == np.uint8 else None,
        )
        x.attrs["value_scale"] = 1.0 / 255.0 if dtype == np.uint8 else 1.0
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
        writer = SampleAppender(x, label_names)
        yield writer
        if not writer.finished:
            raise ValueError("append_sample_store: finish(split) was not called")


def write_samples(path, x: np.ndarray, ids, split, labels=None, label_names=None, attrs=None):
    """Write a whole in-memory array as a sample store."""
    with create_sample_store(path, len(x), x.shape[1:], x.dtype, ids, split,
                             labels, label_names, attrs) as ds:
        ds[...] = x


@dataclass
class SampleStore:
    """Read access to a ``samples.h5``; use as a context manager or call :meth:`close`."""

    path: str

    def __post_init__(self):
        self._f = open_h5(self.path, FORMAT)
        try:
            self.x = numeric_dataset(self._f, "x", self.path)
            numeric_dataset(self._f, "split", self.path)
            if "labels" in self._f:
                numeric_dataset(self._f, "labels", self.path)
        except Exception:
            self._f.close()
            raise
        self.scale = float(self.x.attrs.get("value_scale", 1.0))
        self.ids = [s.decode() if isinstance(s, bytes) else s for s in self._f["ids"][()]]
        self.split = self._f["split"][()]
        if "labels" in self._f:
            self.labels = self._f["labels"][()].astype(bool)
            self.label_names = [s.decode() if isinstance(s, bytes) else s
                                for s in self._f["label_names"][()]]
        else:
            self.labels, self.label_names = None, []
        self.attrs = dict(self._f.attrs)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._f.close()

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def read(self, indices: np.ndarray | slice | None = None) -> np.ndarray:
        """Samples as float32 in [0, 1]; ``indices`` in any order (duplicates allowed)."""
        if indices is None:
            raw = self.x[()]
        elif isinstance(indices, slice):
            raw = self.x[indices]
        else:
            indices = np.asarray(indices, dtype=np.int64)
            order = np.argsort(indices, kind="stable")
            uniq, inverse = np.unique(indices[order], return_inverse=True)
            block = self.x[uniq] if len(uniq) else self.x[0:0]
            raw = np.empty((len(indices), *self.sample_shape), dtype=self.x.dtype)
            raw[order] = block[inverse]
        out = raw.astype(np.float32)
        if self.scale != 1.0:
            out *= np.float32(self.scale)
        self.check_finite(out)
        return out

    def check_finite(self, x: np.ndarray) -> None:
        """Refuse a block of samples holding NaN or infinite values (float stores only).

        Called on every block read, so a damaged store or a user's NaN stops the stage
        that reads it with the ids of the bad samples, whatever the model would make of
        them (some CPUs' ReLU turns NaN into 0, so the outputs can look fine).
        """
        if x.dtype.kind != "f" or np.isfinite(x).all():
            return
        bad, n_bad = [], 0
        for start in range(0, len(self), 1024):  # the error path: name them all
            block = self.x[start:start + 1024]
            rows = np.nonzero(~np.isfinite(block.reshape(len(block), -1)).all(axis=1))[0]
            n_bad += len(rows)
            bad += [self.ids[start + int(r)] for r in rows[:5 - len(bad)]]
        raise InputDataError(
            f"{self.path}: {n_bad} sample(s) hold NaN or infinite values, e.g. {', '.join(bad)}; "
            f"fix the input data and rerun the stage that packed them")

    def index_of(self, ids: Sequence[str]) -> np.ndarray:
        lookup = {s: i for i, s in enumerate(self.ids)}
        missing = [s for s in ids if s not in lookup]
        if missing:
            raise InputDataError(
                f"{self.path}: sample id(s) not found: {', '.join(map(str, missing[:10]))}"
                + (" ..." if len(missing) > 10 else "")
            )
        return np.array([lookup[s] for s in ids], dtype=np.int64)

    def iter_blocks(self, block: int) -> Iterator[tuple[int, np.ndarray]]:
        """Contiguous blocks ``(start, x)`` in order: streaming reads for encoding."""
        for start in range(0, len(self), block):
            yield start, self.read(slice(start, min(start + block, len(self))))
