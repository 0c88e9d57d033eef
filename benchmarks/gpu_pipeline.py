"""The CelebA pipeline on a GPU machine with JAX and no TensorFlow, timed stage by stage.

crop_pack (WORKERS processes) -> train paper-celeba at 128x128 (the streaming loader forced),
killed after its first checkpoint and rerun (it must resume) -> encode -> concepts (40
attributes) -> saliency (vanilla gradient, integrated gradients) -> summary figure.
TensorFlow is blocked from import, so anything that needs it fails.

Prepared for the device machine (not run by the tests). From the repository root:

    mkdir -p build/gpudata .whl                       # both ignored by git
    cp ../shared/data/celeba/img_align_celeba_89x109.zip \
       ../shared/data/celeba/list_landmarks_align_celeba_000001-010000.csv build/gpudata/
    head -10002 ../shared/data/celeba/list_attr_celeba.txt | sed '1s/.*/10000/' \
       > build/gpudata/list_attr_celeba.txt           # the first 10,000 rows
    pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
       --platform manylinux_2_28_x86_64 -d .whl keras==3.15.1 namex optree
    # on the device, carrying .whl and build:
    pip install --no-index --no-deps --target /tmp/site .whl/*.whl
    PYTHONPATH=/tmp/site:src OUT=/tmp/out python3 benchmarks/gpu_pipeline.py

Settings by environment: DATA (build/gpudata), PRESET (paper-celeba), SIZE (128), LIMIT
(10000), EPOCHS (2), WORKERS (16), IG_STEPS (32); results and logs go to OUT.
"""
import importlib.abc
import json
import os
import subprocess
import sys
import time
from pathlib import Path


class _NoTF(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ImportError("tensorflow is blocked in this check")
        return None


sys.meta_path.insert(0, _NoTF())
os.environ["KERAS_BACKEND"] = "jax"
HERE = Path(os.environ.get("DATA", Path(__file__).resolve().parents[1] / "build" / "gpudata"))
OUT = Path(os.environ.get("OUT", "/tmp/out"))
OUT.mkdir(parents=True, exist_ok=True)
WORK = Path(os.environ.get("WORK", "/tmp/work"))
WORK.mkdir(parents=True, exist_ok=True)
SIZE = int(os.environ.get("SIZE", 128))
PRESET = os.environ.get("PRESET", "paper-celeba")
EPOCHS = int(os.environ.get("EPOCHS", 2))
LIMIT = int(os.environ.get("LIMIT", 10000))
WORKERS = int(os.environ.get("WORKERS", 16))
STEPS = int(os.environ.get("IG_STEPS", 32))
STAGE = os.environ.get("STAGE", "all")


def train_only():
    import concept_saliency.data.loader as L

    L.BatchLoader.__init__.__kwdefaults__["cache_bytes"] = 0  # force the streaming path
    from concept_saliency.stages import run_job

    m = WORK / "model"
    run_job("train", log_file=str(OUT / "train.log"), backend="jax",
            inputs={"samples": str(WORK / "samples.h5")},
            outputs={"vae": str(m / "vae.keras"), "encoder": str(m / "encoder.keras"),
                     "history": str(m / "history.csv")},
            params={"preset": PRESET, "epochs": EPOCHS, "batch_size": 20, "seed": 0,
                    "checkpoint_dir": str(m / "checkpoint")})


def main():
    from concept_saliency.stages import run_job

    t = {}
    t0 = time.time()
    run_job("crop_pack", log_file=str(OUT / "crop_pack.log"), backend="jax", threads=WORKERS,
            inputs={"images": str(HERE / "img_align_celeba_89x109.zip"),
                    "attributes": str(HERE / "list_attr_celeba.txt"),
                    "landmarks": str(HERE / "list_landmarks_align_celeba_000001-010000.csv")},
            outputs={"samples": str(WORK / "samples.h5"), "report": str(WORK / "report.txt")},
            params={"image_size": SIZE, "validation_fraction": 0.2, "seed": 0, "limit": LIMIT})
    t["crop_pack"] = time.time() - t0

    # train in a child process, kill it once epoch 1's checkpoint is written, then resume
    state = WORK / "model/checkpoint/state.json"
    t0 = time.time()
    child = subprocess.Popen([sys.executable, __file__], env=dict(os.environ, STAGE="train"))
    while child.poll() is None and not state.exists():
        time.sleep(0.5)
    child.kill()
    child.wait()
    t["train_until_killed"] = time.time() - t0
    t0 = time.time()
    done = subprocess.run([sys.executable, __file__], env=dict(os.environ, STAGE="train"))
    assert done.returncode == 0
    t["train_resumed"] = time.time() - t0
    assert "resuming from the checkpoint of epoch 1" in (OUT / "train.log").read_text()

    m, samples, concepts = WORK / "model", str(WORK / "samples.h5"), str(WORK / "concepts.h5")
    t0 = time.time()
    run_job("encode", log_file=str(OUT / "encode.log"), backend="jax",
            inputs={"samples": samples, "encoder": str(m / "encoder.keras")},
            outputs={"latents": str(WORK / "latents.h5")})
    t["encode"] = time.time() - t0
    t0 = time.time()
    run_job("concepts", log_file=str(OUT / "concepts.log"), backend="jax",
            inputs={"latents": str(WORK / "latents.h5"), "samples": samples},
            outputs={"concepts": concepts, "separation": str(OUT / "separation.tsv"),
                     "groups": str(WORK / "groups.tsv")},
            params={"spec": {"attributes": "all", "num_samples": 500, "allow_fewer": True},
                    "top_k": 3, "explain_ids": [], "seed": 0})
    maps = []
    for method, opts in (("vanilla_gradient", {}), ("integrated_gradients", {"steps": STEPS})):
        maps.append(str(WORK / f"{method}.h5"))
        run_job("saliency", log_file=str(OUT / "saliency.log"), backend="jax",
                inputs={"samples": samples, "encoder": str(m / "encoder.keras"), "concepts": concepts},
                outputs={"maps": maps[-1]}, params={"method": method, "options": opts})
    run_job("summary_figure", log_file=str(OUT / "summary.log"), backend="jax",
            inputs={"samples": samples, "concepts": concepts, "maps": maps},
            outputs={"figure": str(OUT / "summary.png")}, params={"rank": 3, "top_k": 3})
    t["concepts_saliency_summary"] = time.time() - t0
    import jax

    (OUT / "timings.json").write_text(json.dumps(
        {"devices": [str(d) for d in jax.devices()], "seconds": t,
         "tensorflow_importable": False}, indent=1))
    (OUT / "history.csv").write_text((m / "history.csv").read_text())
    print(json.dumps(t, indent=1))


if __name__ == "__main__":
    train_only() if STAGE == "train" else main()
