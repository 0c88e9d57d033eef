"""Training step of every preset on the CPU: the project's training code against the same
network in plain PyTorch, at the same batch, side by side in one run.

Ours: ``build_vae`` + ``compile_vae`` + ``fit(**FIT_OPTIONS)`` with training's per-step
callback, fed one uint8 batch held in memory (as ``BatchLoader(raw=True)`` serves it), on
the Keras backend of ``KERAS_BACKEND`` (default tensorflow, the project's default).
PyTorch: the twin of ``benchmarks/device/run.py`` (same layers, widths, kernels; Adam; the
same loss), float32, ``torch.set_num_threads(os.cpu_count())``. Each is timed after a
warm-up; rounds alternate between the two so both see the same machine load, and the best
round of each is kept. Weights random, inputs random.

    PYTHONPATH=src:/tmp/bench-extras python benchmarks/train_cpu.py [--rounds 2] [--presets ...]

(torch from the CPU wheel, installed beside the project: see benchmarks/requirements.txt.)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent / "device"))

#: preset -> (input shape, batch, timed steps per round)
CASES = {
    "paper-celeba": ((128, 128, 3), 8, 2),
    "celeba-64": ((64, 64, 3), 32, 4),
    "celeba-32": ((32, 32, 3), 64, 6),
    "paper-mob": ((32, 32, 1), 64, 10),
    "demo-shapes": ((32, 32, 3), 64, 10),
}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--presets", nargs="*", default=list(CASES))
    args = ap.parse_args(argv)

    import keras
    import numpy as np
    import torch

    import run as dev  # benchmarks/device/run.py: the PyTorch twin and the timing helpers
    from concept_saliency.model import build_vae, get_preset
    from concept_saliency.training import compile_vae

    torch.set_num_threads(os.cpu_count() or 1)
    cpu = torch.device("cpu")
    rows = []
    for name in args.presets:
        shape, batch, steps = CASES[name]
        preset = get_preset(name)
        keras.utils.set_random_seed(0)
        vae = build_vae(preset, shape, seed=0)
        compile_vae(vae, preset.learning_rate)
        x = np.random.default_rng(0).integers(0, 256, (batch, *shape), dtype=np.uint8)
        data = dev.Fixed(x, steps + 2)
        ours, theirs = 0.0, 0.0
        for r in range(args.rounds):
            ours = max(ours, dev.keras_fit_rate(vae, data, batch, 2 if r == 0 else 1, steps))
            theirs = max(theirs, dev.torch_train_rate(preset, shape, "float32", batch,
                                                      2 if r == 0 else 1, steps, cpu))
        rows.append((name, shape, batch, ours, theirs))
        print(f"  {name}: ours {ours:.1f} img/s, PyTorch {theirs:.1f} img/s", flush=True)
    print(f"\ntraining step on the CPU, float32, best of {args.rounds} rounds "
          f"(keras {keras.__version__} on {keras.backend.backend()}, torch {torch.__version__}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f})")
    print("| preset | input | batch | ours img/s | PyTorch img/s | ours / PyTorch |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for name, shape, batch, ours, theirs in rows:
        print(f"| {name} | {'x'.join(map(str, shape))} | {batch} | {ours:.1f} | {theirs:.1f} | "
              f"{ours / theirs:.2f}x |")


if __name__ == "__main__":
    main()
