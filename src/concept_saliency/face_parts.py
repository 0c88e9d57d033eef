"""Face parts from CelebA's landmarks: the regions face maps are scored against.

Its own module, free of the scoring code, because the crop stage computes the boxes while it
packs the images (``samples.h5`` keeps them): a stage's rule lists the modules it imports
(:mod:`concept_saliency.code_closure`), so editing how maps are scored or concept vectors
are made does not rerun the crop and everything after it.
"""

from __future__ import annotations

import numpy as np

#: Face parts, as boxes around CelebA's five landmarks (eyes, nose, mouth corners) in the
#: packed image; ``d`` is the distance between the eyes. See :func:`face_part_boxes`.
FACE_PARTS = ("eyes", "brows", "nose", "mouth", "chin", "forehead")

#: The face part each CelebA attribute is about (attributes of the whole face, the hair's
#: length or colour seen at its top, or clothing, are scored against ``forehead`` where the
#: crop shows hair, else not at all). Editable per dataset: ``evaluation.regions``.
CELEBA_PARTS = {
    "Smiling": "mouth", "Mouth_Slightly_Open": "mouth", "Wearing_Lipstick": "mouth",
    "Big_Lips": "mouth", "Mustache": "mouth",
    "Goatee": "chin", "No_Beard": "chin", "5_o_Clock_Shadow": "chin", "Double_Chin": "chin",
    "Eyeglasses": "eyes", "Narrow_Eyes": "eyes", "Bags_Under_Eyes": "eyes",
    "Arched_Eyebrows": "brows", "Bushy_Eyebrows": "brows",
    "Big_Nose": "nose", "Pointy_Nose": "nose",
    "Bangs": "forehead", "Receding_Hairline": "forehead", "Bald": "forehead",
    "Wearing_Hat": "forehead", "Black_Hair": "forehead", "Blond_Hair": "forehead",
    "Brown_Hair": "forehead", "Gray_Hair": "forehead",
}


def face_part_boxes(landmarks: np.ndarray, size: int) -> np.ndarray:
    """``(N, len(FACE_PARTS), 4)`` boxes ``(x0, y0, x1, y1)`` in pixels of the packed image.

    ``landmarks``: ``(N, 10)`` positions in the packed image, in CelebA's order (left eye x,
    y, right eye x, y, nose x, y, left mouth corner x, y, right mouth corner x, y). With the
    eye distance ``d``: eyes ``0.35 d`` beside and ``0.25 d`` above and below the eyes; brows
    from ``0.65 d`` to ``0.2 d`` above the eyes; nose ``0.3 d`` either side of its tip, from
    ``0.2 d`` below the eyes to ``0.2 d`` below the tip; mouth ``0.2 d`` beyond its corners
    and ``0.3 d`` above and below them; chin ``0.3 d`` beyond the corners, from ``0.3 d``
    below the mouth to the bottom; forehead: the full width above the brows. Clipped to
    the image.
    """
    lm = np.asarray(landmarks, dtype=np.float64).reshape(-1, 10)
    lex, ley, rex, rey, nx, ny, lmx, lmy, rmx, rmy = lm.T
    d = np.maximum(np.hypot(rex - lex, rey - ley), 1.0)
    ey, my = (ley + rey) / 2, (lmy + rmy) / 2
    ex0, ex1 = np.minimum(lex, rex), np.maximum(lex, rex)
    mx0, mx1 = np.minimum(lmx, rmx), np.maximum(lmx, rmx)
    full = np.full_like(d, float(size))
    zero = np.zeros_like(d)
    parts = {
        "eyes": (ex0 - 0.35 * d, ey - 0.25 * d, ex1 + 0.35 * d, ey + 0.25 * d),
        "brows": (ex0 - 0.35 * d, ey - 0.65 * d, ex1 + 0.35 * d, ey - 0.2 * d),
        "nose": (nx - 0.3 * d, ey + 0.2 * d, nx + 0.3 * d, ny + 0.2 * d),
        "mouth": (mx0 - 0.2 * d, my - 0.3 * d, mx1 + 0.2 * d, my + 0.3 * d),
        "chin": (mx0 - 0.3 * d, my + 0.3 * d, mx1 + 0.3 * d, full),
        "forehead": (zero, zero, full, ey - 0.65 * d),
    }
    boxes = np.stack([np.stack(parts[p], axis=1) for p in FACE_PARTS], axis=1)
    return np.clip(boxes, 0, size).astype(np.float32)
