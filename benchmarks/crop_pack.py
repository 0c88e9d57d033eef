"""Crop-and-pack throughput on the shared CelebA images: crop_and_pack on 1 and 2 cores
against a plain one-image-at-a-time OpenCV loop like the original notebook's.

    pip install --target /tmp/bench-site -r benchmarks/requirements.txt
    PYTHONPATH=src:/tmp/bench-site python benchmarks/crop_pack.py [--size 64] [--repeat 2]

All runs read the same 10,000 aligned 89x109 images and crop them with the same landmark
boxes (scaled by 1/2) to size x size. The baseline reads each file with cv2.imread, slices the
box, cv2.resize()s it and keeps the array (the notebook then wrote it back to disk); ours
also writes the chunked HDF5 store with ids and labels. Ratios are measured side by side in
this one run; other processes on the machine disturb them (rerun, take the best of --repeat).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CSM_TEST_DATA", REPO.parent / "shared" / "data")) / "celeba"


def opencv_loop(folder: Path, landmarks_csv: Path, size: int) -> int:
    """The notebook's loop, with the landmarks scaled to the 89x109 images."""
    import cv2
    import pandas as pd

    land = pd.read_csv(landmarks_csv)
    out = []
    for i in range(len(land)):
        img = cv2.imread(str(folder / land["image_id"][i]))
        s = img.shape[1] / 178
        top, bottom = int(round((land["nose_y"][i] - 105) * s)), int(round((land["leftmouth_y"][i] + 35) * s))
        left, right = int(round((land["lefteye_x"][i] - 50) * s)), int(round((land["righteye_x"][i] + 50) * s))
        cropped = img[max(top, 0):bottom, max(left, 0):right, :]
        if cropped.nbytes > 0:
            out.append(cv2.resize(cropped, (size, size)))
    return len(np.stack(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=2, help="runs of each; the best is reported")
    args = ap.parse_args()
    from concept_saliency.data.celeba import crop_and_pack

    zip_path = DATA / "img_align_celeba_89x109.zip"
    landmarks = DATA / "list_landmarks_align_celeba_000001-010000.csv"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(tmp)
        folder = tmp / "img_align_celeba"
        n = len(list(folder.glob("*.jpg")))
        # the first 10,000 rows of the attribute table, so neither side reads 200k rows
        lines = (DATA / "list_attr_celeba.txt").read_text().splitlines()
        attrs = tmp / "list_attr_celeba.txt"
        attrs.write_text("\n".join([str(n)] + lines[1:n + 2]) + "\n")

        runs = {
            "opencv loop, 1 core (folder)": lambda: opencv_loop(folder, landmarks, args.size),
        }
        for workers in (1, 2):
            for src, label in ((folder, "folder"), (zip_path, "zip")):
                runs[f"crop_and_pack, {workers} worker(s) ({label})"] = (
                    lambda src=src, workers=workers: crop_and_pack(
                        src, attrs, landmarks, tmp / "s.h5", tmp / "r.txt", image_size=args.size,
                        workers=workers)["counts"]["images packed"])
        best = {}
        for _ in range(args.repeat):
            for name, fn in runs.items():
                t0 = time.perf_counter()
                done = fn()
                dt = time.perf_counter() - t0
                assert done == n, (name, done)
                best[name] = min(best.get(name, float("inf")), dt)
    base = n / best["opencv loop, 1 core (folder)"]
    print(f"{n} images, 89x109 -> {args.size}x{args.size}, best of {args.repeat} "
          f"(os.cpu_count()={os.cpu_count()}, load average {os.getloadavg()[0]:.1f})")
    print(f"{'run':44s} {'seconds':>8s} {'images/s':>9s} {'vs opencv':>9s}")
    for name, dt in best.items():
        print(f"{name:44s} {dt:8.2f} {n / dt:9.0f} {n / dt / base:8.2f}x")
    for workers in (1, 2):
        rate = n / best[f"crop_and_pack, {workers} worker(s) (zip)"] / workers
        print(f"crop_and_pack (zip), {workers} worker(s): {rate:.0f} images/s per core; 202,599 images "
              f"on 16 cores at that rate: {202_599 / (16 * rate):.0f} s")


if __name__ == "__main__":
    main()
