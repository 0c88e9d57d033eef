"""An image folder with region masks, from the shared CelebA data: the masks path end to end.

Writes, under ``--out`` (a copy of the workflow, or any folder you run Snakemake in):

- ``maskdata/faces/``: the first ``--n`` aligned CelebA images as they are (89x109 JPEGs, not
  cropped around the face);
- ``maskdata/labels.csv``: their Smiling, Mouth_Slightly_Open and Eyeglasses labels (0/1);
- ``maskdata/masks/mouth/<id>.png`` and ``masks/eyes/<id>.png``: ellipses drawn from each
  image's landmarks (``d`` the distance between the eyes: the mouth 0.2 d beyond its corners
  and 0.3 d above and below, each eye 0.35 d beside and 0.25 d above and below, the extents of
  ``face_parts``' boxes), so not rectangles;
- ``maskrun.yaml``: an ``image_folder`` dataset with ``masks``, the celeba-32 preset, vanilla
  gradient and SmoothGrad, each attribute scored against its part.

    python benchmarks/celeba_masks.py --out <workflow copy> [--n 1500] [--data <shared data>]
    cd <workflow copy> && snakemake --cores 2 --configfile maskrun.yaml
    # results/faces/small/evaluation/localisation.tsv

Not a test: it needs the shared data and a few minutes of training.
"""

from __future__ import annotations

import argparse
import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ATTRIBUTES = ["Smiling", "Mouth_Slightly_Open", "Eyeglasses"]
SCALE = 0.5  # the landmarks are in pixels of the 178x218 images; these are 89x109
CONFIG = {
    "results": "results", "backend": "tensorflow", "seed": 0,
    "saliency": {"methods": {"vanilla_gradient": {}, "smoothgrad": {"samples": 8, "noise_level": 0.15}}},
    "datasets": {"faces": {
        "type": "images",
        "source": {"image_folder": {"images": "maskdata/faces", "labels": "maskdata/labels.csv",
                                    "masks": "maskdata/masks"}},
        "image_size": 32, "validation_fraction": 0.2,
        "models": {"small": {"preset": "celeba-32", "epochs": 8, "batch_size": 64}},
        "concepts": {"attributes": ATTRIBUTES},
        "localisation": {"regions": {"Smiling": "mouth", "Mouth_Slightly_Open": "mouth", "Eyeglasses": "eyes"}},
        "explain": {"top_k": 6},
    }},
}


def ellipse(draw, x0, y0, x1, y1) -> None:
    draw.ellipse([x0 * SCALE, y0 * SCALE, x1 * SCALE, y1 * SCALE], fill=255)


def main(argv=None) -> None:
    from PIL import Image, ImageDraw

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--n", type=int, default=1500)
    parser.add_argument("--data", type=Path, help="the shared data (default: CSM_TEST_DATA, or ../shared/data "
                        "beside the checkout)", default=Path(os.environ.get(
                            "CSM_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")))
    args = parser.parse_args(argv)
    celeba = args.data / "celeba"
    if not (celeba / "img_align_celeba_89x109.zip").is_file():
        parser.error(f"{celeba / 'img_align_celeba_89x109.zip'} is not there; give the shared data with --data")
    root = args.out / "maskdata"
    for folder in ("faces", "masks/mouth", "masks/eyes"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    names = [f"{i:06d}.jpg" for i in range(1, args.n + 1)]
    with zipfile.ZipFile(celeba / "img_align_celeba_89x109.zip") as z:
        for name in names:
            (root / "faces" / name).write_bytes(z.read(f"img_align_celeba/{name}"))
    attributes = pd.read_csv(celeba / "list_attr_celeba.txt", sep=r"\s+", skiprows=1).loc[names, ATTRIBUTES]
    labels = (attributes > 0).astype(int)
    labels.insert(0, "image", names)
    labels.to_csv(root / "labels.csv", index=False)
    landmarks = pd.read_csv(celeba / "list_landmarks_align_celeba_000001-010000.csv", index_col=0).loc[names]
    for name, r in landmarks.iterrows():
        d = np.hypot(r.righteye_x - r.lefteye_x, r.righteye_y - r.lefteye_y)
        mouth, eyes = Image.new("L", (89, 109), 0), Image.new("L", (89, 109), 0)
        y = (r.leftmouth_y + r.rightmouth_y) / 2
        ellipse(ImageDraw.Draw(mouth), r.leftmouth_x - 0.2 * d, y - 0.3 * d, r.rightmouth_x + 0.2 * d, y + 0.3 * d)
        for x, y in ((r.lefteye_x, r.lefteye_y), (r.righteye_x, r.righteye_y)):
            ellipse(ImageDraw.Draw(eyes), x - 0.35 * d, y - 0.25 * d, x + 0.35 * d, y + 0.25 * d)
        mouth.save(root / "masks" / "mouth" / name.replace(".jpg", ".png"))
        eyes.save(root / "masks" / "eyes" / name.replace(".jpg", ".png"))
    (args.out / "maskrun.yaml").write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    print(f"{args.n} images, masks of mouth and eyes, under {root}; positives: "
          + ", ".join(f"{a} {int(labels[a].sum())}" for a in ATTRIBUTES))


if __name__ == "__main__":
    main()
