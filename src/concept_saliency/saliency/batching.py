"""Splitting work into chunks of rows: the one chunking and padding loop of the engine.

Every method pushes many rows (samples, path points, noisy or occluded copies)
through a compiled function a chunk at a time, so that memory stays bounded.
:func:`map_chunks` gathers a row-wise function's results in order;
:func:`sum_chunks` adds up a function's results over chunks (integrated
gradients' groups of path points). With ``pad=True`` a shorter last chunk is
filled up with zero rows, so that a program compiled for full chunks serves it
(JAX compiles one program per input shape; TensorFlow's batch dimension is
free); the padded rows' results are dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np


def chunks(arrays: Sequence[np.ndarray], size: int, *, pad: bool = False
           ) -> Iterator[tuple[int, list[np.ndarray]]]:
    """Consecutive chunks of at most ``size`` rows of every array in ``arrays``.

    Arguments: ``arrays`` of one length along axis 0; ``size`` >= 1; ``pad``: where
    there is more than one chunk, the last one is filled up to ``size`` rows with zeros;
    without ``pad`` the rows are shared evenly among as few chunks as ``size`` allows (a
    small last chunk uses the CPU worse). Yields ``(rows, chunk)``: the number of real rows
    (they come first) and the list of the arrays' slices, in the order of ``arrays``.
    Raises ``ValueError`` for arrays of different lengths or a size below 1.
    """
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, not {size}")
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"arrays of different lengths: {[len(a) for a in arrays]}")
    if not pad and n:
        size = -(-n // -(-n // size))  # ceil(n / number of chunks)
    for start in range(0, n, size):
        chunk = [a[start:start + size] for a in arrays]
        rows = len(chunk[0])
        if pad and rows < size < n:
            chunk = [np.concatenate([a, np.zeros((size - rows, *a.shape[1:]), a.dtype)]) for a in chunk]
        yield rows, chunk


def map_chunks(fn: Callable, arrays: Sequence[np.ndarray], size: int, *, pad: bool = False):
    """``fn(*chunk)`` over the chunks of :func:`chunks`, its results joined in row order.

    ``fn`` returns one array or a tuple of arrays with one row per input row (or ``None``
    in a tuple's place, passed through). Returns the same structure for all rows.
    """
    parts = []
    for rows, chunk in chunks(arrays, size, pad=pad):
        out = fn(*chunk)
        parts.append(tuple(None if o is None else o[:rows] for o in out) if isinstance(out, tuple)
                     else out[:rows])
    if not parts:
        raise ValueError("nothing to do: no rows")
    if len(parts) == 1:  # (no copy)
        return parts[0]
    if isinstance(parts[0], tuple):
        return tuple(None if p[0] is None else np.concatenate(p) for p in zip(*parts))
    return np.concatenate(parts)


def sum_chunks(fn: Callable, arrays: Sequence[np.ndarray], size: int, *, pad: bool = False):
    """The sum of ``fn(*chunk)`` over the chunks of :func:`chunks` (an array, or a number).

    With ``pad``, ``fn`` must give padded (zero) rows no weight: integrated gradients'
    padded path points have weight 0.
    """
    total = None
    for _, chunk in chunks(arrays, size, pad=pad):
        part = fn(*chunk)
        total = part if total is None else total + part
    return total
