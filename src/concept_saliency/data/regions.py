"""Regions on a user's images, packed apart from the images: ``regions.h5`` (format
``csm.regions``), written by the prepare_regions stage (:mod:`.region_packing`) and read by the
localise stage.

It holds, for the samples of the sample store in its order,

- ``ids``: the sample ids (those of ``samples.h5``);
- optionally ``boxes``: ``(N, R, 4)`` float32 ``(x0, y0, x1, y1)`` in the packed image's pixels
  (NaN where a sample has none), with ``box_names``;
- optionally ``masks``: ``(N, R, H, W)`` booleans (all False where a sample has none), with
  ``mask_names``;
- the attribute ``image_shape``: ``(H, W)`` of the packed images.

Regions live apart from the images so that editing a box or a mask reruns their packing and
the scoring, not the packing of the images and the training. CelebA's face parts (from its
landmarks, fixed with the images) stay in its sample store; :class:`RegionStore` reads either.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..artifacts import numeric_dataset, open_h5
from ..errors import ArtifactError
from .samples import FORMAT as SAMPLES_FORMAT

FORMAT = "csm.regions"


@dataclass
class RegionStore:
    """Read access to the regions of packed images: a regions file (``csm.regions``: a user's
    boxes and masks) or the boxes a sample store holds (CelebA's face parts). Use as a context
    manager or call :meth:`close`."""

    path: str

    def __post_init__(self):
        import h5py

        try:  # which of the two it is; open_h5 then checks that one's format and version
            with h5py.File(self.path, "r") as f:
                fmt = f.attrs.get("format")
        except OSError:
            fmt = None
        self._f = open_h5(self.path, SAMPLES_FORMAT if fmt == SAMPLES_FORMAT else FORMAT)
        names = lambda key: [s.decode() if isinstance(s, bytes) else s for s in self._f[key][()]]  # noqa: E731
        self.ids = names("ids")
        self.box_names = names("box_names") if "boxes" in self._f else []
        self.mask_names = names("mask_names") if "masks" in self._f else []
        if fmt == SAMPLES_FORMAT:
            self.image_shape = tuple(self._f["x"].shape[1:3])
        else:
            self.image_shape = tuple(int(v) for v in self._f.attrs["image_shape"])
        self._boxes = None

    @property
    def boxes(self) -> np.ndarray | None:
        """``(N, R, 4)`` boxes of each sample (``box_names``), or None."""
        if self._boxes is None and self.box_names:
            self._boxes = numeric_dataset(self._f, "boxes", self.path)[()]
        return self._boxes

    def masks(self, indices, region: str) -> np.ndarray:
        """``(len(indices), H, W)`` booleans: the mask of ``region`` (one of ``mask_names``) on
        each of the samples ``indices`` (all False where a sample has none)."""
        masks = self._f["masks"]
        if masks.dtype != bool or masks.shape[:2] != (len(self.ids), len(self.mask_names)):
            raise ArtifactError(f"{self.path}: 'masks' is not a boolean (samples, regions, height, "
                                f"width) array; rerun the stage that packed it")
        r = self.mask_names.index(region)
        return np.stack([masks[int(i), r] for i in indices]) if len(indices) else \
            np.zeros((0, *masks.shape[2:]), bool)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._f.close()
