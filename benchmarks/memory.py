"""Peak memory of crop_and_pack and of encoding at 1,000 and 10,000 CelebA images.

    PYTHONPATH=src python benchmarks/memory.py [--size 64]

Each measurement runs in a fresh process and reports its peak resident memory (and, for
packing, the peak of its worker processes): both must stay flat as the number of images
grows tenfold, since images are streamed in blocks (only the per-image ids, labels and
latents, tens of bytes per image, grow with N). Encoding uses an untrained celeba-64
encoder: its memory does not depend on the weights.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CSM_TEST_DATA", REPO.parent / "shared" / "data")) / "celeba"

PACK = """
import json, resource, sys
from concept_saliency.data.celeba import crop_and_pack
d = sys.argv[1]
crop_and_pack(d + "/img_align_celeba_89x109.zip", d + "/list_attr_celeba.txt",
              d + "/list_landmarks_align_celeba_000001-010000.csv", sys.argv[2], sys.argv[2] + ".txt",
              image_size=int(sys.argv[3]), workers=2, limit=int(sys.argv[4]))
print(json.dumps({"self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "workers": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""

ENCODE = """
import json, resource, sys
from concept_saliency.backend import use_backend
use_backend("tensorflow", 2)
from concept_saliency.data.samples import SampleStore
from concept_saliency.encoding import encode_store
from concept_saliency.model import build_encoder, get_preset, latent_model
size = int(sys.argv[2])
encoder = latent_model(build_encoder(get_preset("celeba-64" if size == 64 else "celeba-32"), (size, size, 3)))
with SampleStore(sys.argv[1]) as store:
    z = encode_store(encoder, store, 256)
print(json.dumps({"self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "n": len(z)}))
"""


def run(code: str, *args) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
               TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                         env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64, choices=(32, 64))
    args = ap.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (1000, 10000):
            store = Path(tmp) / f"s{n}.h5"
            pack = run(PACK, DATA, store, args.size, n)
            enc = run(ENCODE, store, args.size)
            rows[n] = (pack["self"] / 1024, pack["workers"] / 1024, enc["self"] / 1024)
    print(f"peak resident memory (MiB), images {args.size}x{args.size}")
    print(f"{'images':>7s} {'pack (main)':>12s} {'pack (worker)':>14s} {'encode':>8s}")
    for n, (a, b, c) in rows.items():
        print(f"{n:7d} {a:12.0f} {b:14.0f} {c:8.0f}")
    a1, b1, c1 = rows[1000]
    a2, b2, c2 = rows[10000]
    print(f"{'10k/1k':>7s} {a2 / a1:11.2f}x {b2 / b1:13.2f}x {c2 / c1:7.2f}x")


if __name__ == "__main__":
    main()
