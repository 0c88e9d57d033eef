"""Packing the regions given with a user's images into ``regions.h5`` (:mod:`.regions`): a
table of boxes (:func:`read_region_boxes`) and a folder of masks (:func:`find_region_masks`),
scaled or resized as the images are packed (:mod:`.images`)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..artifacts import create_h5
from ..errors import ArtifactError, InputDataError
from .images import decode_upright, resize_values, upright_size
from .label_table import read_label_table, resolve_images
from .manifest import MASK_SUFFIXES, mask_files
from .regions import FORMAT
from .samples import SampleStore

log = logging.getLogger("concept_saliency")


def pack_image_regions(samples_path: str | os.PathLike, labels_path: str | os.PathLike,
                       image_dir: str | os.PathLike, out_path: str | os.PathLike,
                       boxes_path: str | os.PathLike | None = None,
                       masks_dir: str | os.PathLike | None = None, block: int = 256) -> dict:
    """The regions of the images of a packed folder (``samples_path``, packed from ``image_dir``
    and the attribute table ``labels_path``) into ``out_path``: ``boxes_path`` (a table,
    :func:`read_region_boxes`), scaled to the packed images; ``masks_dir`` (a folder of masks,
    :func:`find_region_masks`), resized with the images (:func:`mask_to_size`). A region is
    given as boxes or as masks, not both. The images themselves are not packed again, only
    their size as displayed is read (:func:`.images.upright_size`). Returns a summary (counts)
    for the provenance record."""
    import h5py

    if boxes_path is None and masks_dir is None:
        raise ValueError("give the boxes, the masks folder, or both")
    table = read_label_table(labels_path)
    with SampleStore(str(samples_path)) as store:
        ids, (height, width) = list(store.ids), store.sample_shape[:2]
    if ids != list(table.ids):
        raise ArtifactError(f"{samples_path}: holds other images than {labels_path} names; rerun the "
                            f"stage that packs the images (snakemake --forcerun prepare_images)")
    files = resolve_images(table, image_dir)
    given = read_region_boxes(boxes_path, table.images) if boxes_path else {}
    masks_of, no_image = find_region_masks(masks_dir, table.ids, table.images) if masks_dir else ({}, [])
    if no_image:
        log.warning("%s: %d mask(s) of images the label table does not name, left out (the first: %s)",
                    masks_dir, len(no_image), no_image[0])
    box_names = sorted({r for regions in given.values() for r in regions})
    both = sorted(set(box_names) & set(masks_of))
    if both:
        raise InputDataError(f"{masks_dir}: region '{both[0]}' has masks here and boxes in {boxes_path}; "
                             f"give each region one way (rename the folder or the boxes' region)")
    mask_names = sorted(masks_of)
    n = len(ids)
    boxes = np.full((n, len(box_names), 4), np.nan, dtype=np.float32)
    text = h5py.string_dtype("utf-8")
    with create_h5(out_path, FORMAT, expected_bytes=n * len(mask_names) * height * width) as f:
        f.attrs["image_shape"] = (height, width)
        f.create_dataset("ids", data=np.asarray(ids, dtype=object), dtype=text)
        masks = None
        if mask_names:
            f.create_dataset("mask_names", data=np.asarray(mask_names, dtype=object), dtype=text)
            masks = f.create_dataset("masks", shape=(n, len(mask_names), height, width), dtype=bool,
                                     chunks=(1, 1, height, width), compression="lzf")
        for start in range(0, n, block):
            inside = np.zeros((min(block, n - start), len(mask_names), height, width), bool)
            for i in range(start, start + len(inside)):
                regions = given.get(table.images[i], {})
                mine = [(r, region) for r, region in enumerate(mask_names) if table.ids[i] in masks_of[region]]
                if not regions and not mine:
                    continue
                h, w = upright_size(files[i])
                for region, box in regions.items():
                    if box[2] > w or box[3] > h:
                        raise InputDataError(f"{boxes_path}: the box of '{region}' on {table.images[i]} "
                                             f"ends at ({box[2]:g}, {box[3]:g}), outside the {w}x{h} image")
                    boxes[i, box_names.index(region)] = np.asarray(box) * np.array([width / w, height / h] * 2)
                for r, region in mine:
                    inside[i - start, r] = mask_to_size(read_mask(masks_of[region][table.ids[i]], (h, w),
                                                                  table.images[i]), height)
            if masks is not None:
                masks[start:start + len(inside)] = inside
        if box_names:
            f.create_dataset("boxes", data=boxes)
            f.create_dataset("box_names", data=np.asarray(box_names, dtype=object), dtype=text)
    return {"images": n, "box_regions": {r: int(np.isfinite(boxes[:, k, 0]).sum()) for k, r in enumerate(box_names)},
            **({"mask_regions": {r: len(m) for r, m in masks_of.items()},
                "masks_without_image": len(no_image)} if masks_of else {})}


def find_region_masks(folder: str | os.PathLike, ids: list[str],
                      images: list[str] | None = None) -> tuple[dict[str, dict[str, Path]], list[Path]]:
    """Masks of regions on the images: ``<folder>/<region>/<sample id>.<suffix>``, one
    subfolder per region, each mask named as its image is inside the images folder (any of
    :data:`MASK_SUFFIXES`: ``mouth/a/x.png`` is the mouth of ``a/x.jpg``; the files:
    :func:`.manifest.mask_files`), or as its image with a suffix added (``mouth/a/x.jpg.png``;
    ``images``: the image paths, in the order of ``ids``). An image without a mask of a region
    has no such region.
    Returns region -> sample id -> file, and the masks of images the label table does not name
    (left out: a table may name fewer images than the folders hold). Refused, naming the file:
    a region none of whose masks names an image of the table (misnamed masks), two masks of one
    image and region, a mask directly in ``folder`` (regions are its subfolders), no mask."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputDataError(f"{folder}: the masks folder does not exist; give a folder with one "
                             f"subfolder of masks per region")
    known = {**dict(zip(images or [], ids)), **{i: i for i in ids}}  # image path or id -> id
    found: dict[str, dict[str, Path]] = {}
    unmatched: dict[str, list[Path]] = {}
    for region, path in mask_files(folder):
        if not region:
            raise InputDataError(f"{path}: a mask directly in the masks folder; put each region's "
                                 f"masks in a subfolder named after the region")
        name = path.relative_to(folder / region).with_suffix("").as_posix()
        sid = known.get(name)
        masks = found.setdefault(region, {})
        if sid is None:
            unmatched.setdefault(region, []).append(path)
        elif sid in masks:
            raise InputDataError(f"{path}: a second mask of '{region}' for image '{sid}' (also "
                                 f"{masks[sid]}); keep one")
        else:
            masks[sid] = path
    for region, masks in found.items():
        if not masks:
            first = unmatched[region][0]
            name = first.relative_to(folder / region).with_suffix("").as_posix()
            raise InputDataError(f"{first}: none of the {len(unmatched[region])} masks of '{region}' is "
                                 f"named as an image of the label table ('{name}' is not one); a mask "
                                 f"is named as its image inside the images folder, with any suffix")
    if not found:
        raise InputDataError(f"{folder}: no masks found; give one subfolder per region holding a mask "
                             f"per image ({', '.join(MASK_SUFFIXES)})")
    return found, [path for paths in unmatched.values() for path in paths]


def read_mask(path: str | os.PathLike, shape: tuple[int, int], image: str) -> np.ndarray:
    """A region mask as booleans: a pixel is inside where its largest channel is above half the
    mask's largest value (0/1 and 0/255 masks alike, a JPEG's compression noise outside; an
    all-zero mask is empty); in a mask with transparency that varies, where it is more opaque
    than not (a region painted in any colour on a transparent layer). It must have the size of
    its image as displayed (upright), ``shape``; refused otherwise, naming both."""
    values, alpha = decode_upright(path)
    values = alpha if alpha is not None and alpha.min() < alpha.max() else values.max(axis=2)
    if values.shape != tuple(shape):
        raise InputDataError(f"{path}: the mask is {values.shape[1]}x{values.shape[0]} pixels and its "
                             f"image {image} {shape[1]}x{shape[0]}; a mask must cover its image pixel for pixel")
    top = values.max()
    return values > top / 2 if top > 0 else np.zeros(values.shape, bool)


def mask_to_size(mask: np.ndarray, size: int) -> np.ndarray:
    """A mask resized as its image is (:func:`.images.resize_values`, bilinear and antialiased):
    a packed pixel is inside when at least half of it was; a region smaller than that keeps its
    most covered pixel, so no region vanishes."""
    if mask.shape == (size, size):
        return mask.copy()
    cover = resize_values(mask[..., None].astype(np.float64), size)[..., 0]
    inside = cover >= 0.5
    if mask.any() and not inside.any():
        inside[np.unravel_index(np.argmax(cover), cover.shape)] = True
    return inside


def read_region_boxes(path: str | os.PathLike, images: list[str]) -> dict[str, dict[str, tuple]]:
    """A table of regions on the images: a header, then ``image, region, x0, y0, x1, y1`` per box, in
    pixels of the image as it is displayed (upright), ``x0 < x1`` and ``y0 < y1`` (CSV, or TSV for
    ``.tsv``/``.tab``). Returns image -> region -> box; one clear error naming the line otherwise."""
    import csv

    path = Path(path)
    known = set(images)
    out: dict[str, dict[str, tuple]] = {}
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputDataError(f"{path}: cannot read the region boxes ({exc})") from None
    rows = list(csv.reader(text.splitlines(), delimiter="\t" if path.suffix.lower() in (".tsv", ".tab")
                           else ","))
    header = [h.strip().lower() for h in (rows[0] if rows else [])]
    if header[:6] != ["image", "region", "x0", "y0", "x1", "y1"]:
        raise InputDataError(f"{path}: line 1 must be the header image, region, x0, y0, x1, y1")
    for line, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        image, region = row[0].strip(), row[1].strip() if len(row) > 1 else ""
        try:
            box = tuple(float(v) for v in row[2:6])
        except ValueError:
            box = ()
        if len(box) != 4 or not all(np.isfinite(box)) or box[0] >= box[2] or box[1] >= box[3] or min(box) < 0:
            raise InputDataError(f"{path}: line {line}: the box must be four finite numbers x0 < x1, "
                                 f"y0 < y1, from 0, in pixels of the image")
        if image not in known:
            raise InputDataError(f"{path}: line {line}: image '{image}' is not in the label table")
        if not region or region in out.get(image, {}):
            raise InputDataError(f"{path}: line {line}: " + (f"region '{region}' of '{image}' is given twice"
                                                              if region else "the region name is empty"))
        out.setdefault(image, {})[region] = box
    return out
