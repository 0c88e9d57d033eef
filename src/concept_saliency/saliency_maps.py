"""The saliency maps of one method (``saliency/<method>.h5``, format ``csm.saliency``).

One group per concept holds the explained samples' positions in the sample store
(``indices``), their ``ids``, their ``maps`` (the shape of the samples) and their concept
``scores``; the file's attributes name the ``method`` and its ``options``.
:func:`maps_writer` writes it concept by concept, :func:`read_maps` reads one concept.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator, Sequence

import numpy as np

from .artifacts import create_h5, numeric_dataset, open_h5

FORMAT = "csm.saliency"


class MapsWriter:
    """Adds one concept's maps at a time to an open ``csm.saliency`` file."""

    def __init__(self, f):
        self._f = f

    def add(self, concept: str, indices: np.ndarray, ids: Sequence[str], maps: np.ndarray,
            scores: np.ndarray) -> None:
        import h5py

        g = self._f.create_group(concept)
        g.create_dataset("indices", data=np.asarray(indices, dtype=np.int64))
        g.create_dataset("ids", data=np.asarray(list(ids), dtype=object), dtype=h5py.string_dtype())
        g.create_dataset("maps", data=maps)
        g.create_dataset("scores", data=scores)


@contextlib.contextmanager
def maps_writer(path: str | os.PathLike, method: str, options: dict) -> Iterator[MapsWriter]:
    """Create ``path`` atomically: it appears only when the block ends without an error."""
    with create_h5(path, FORMAT) as f:
        f.attrs["method"] = method
        f.attrs["options"] = repr(options)
        yield MapsWriter(f)


def read_maps(path: str | os.PathLike, concept: str) -> dict:
    """``{"indices", "maps", "scores", "method"}`` of one concept."""
    with open_h5(path, FORMAT) as f:
        g = f[concept]
        return {"indices": numeric_dataset(g, "indices", path)[()],
                "maps": numeric_dataset(g, "maps", path)[()],
                "scores": numeric_dataset(g, "scores", path)[()],
                "method": str(f.attrs["method"])}


def read_method(path: str | os.PathLike) -> str:
    """The saliency method whose maps ``path`` holds."""
    with open_h5(path, FORMAT) as f:
        return str(f.attrs["method"])
