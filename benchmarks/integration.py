"""Integrated gradients: completeness error and map error vs steps, every integration rule side by side.

For trained encoders of workflow results (the demo's shapes and tissue, celeba-small), the
explained samples of every concept (``--per-concept`` of each) and the baselines ``zeros``
and ``mean``, it prints per number of steps and rule

- the completeness error: ``sum_i |sum of map_i - (s(x_i) - s(x'_i))| / sum_i |s(x_i) - s(x'_i)|``
  (pooled over the samples; the median of the per-sample ratios in brackets);
- the map error: the median over samples of ``|map - reference| / |reference|`` (Euclidean
  norms), the reference being the midpoint rule with ``--reference-steps`` steps;

then, for each rule, the completeness error at ``steps / 2`` relative to that of the old default
(``riemann_middle``) at ``steps`` (below 1: the rule meets the old completeness with half the
steps). Results come from ``snakemake --until concepts`` with the demo config and
config/celeba-small.yaml::

    PYTHONPATH=src python benchmarks/integration.py \\
        --results results/shapes/demo results/tissue/demo results/celeba-small/cpu
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

OLD = "riemann_middle"


def load(model_dir: Path, per_concept: int):
    """The latent model, each explained sample's concept vector and the samples (float32)."""
    from concept_saliency.concepts import read_concepts
    from concept_saliency.data.samples import SampleStore
    from concept_saliency.model import latent_model, load_model

    concepts = read_concepts(model_dir / "concepts" / "concepts.h5")
    encoder = latent_model(load_model(model_dir / "model" / "encoder.keras", "encoder"))
    index, concept = [], []
    for k, name in enumerate(concepts.names):
        chosen = list(concepts.explain[name][:per_concept])
        index += chosen
        concept += [k] * len(chosen)
    order = np.argsort(index, kind="stable")  # the store reads sorted indices
    with SampleStore(str(model_dir.parent / "data" / "samples.h5")) as store:
        x = store.read(np.asarray(index)[order]).astype(np.float32)
    return encoder, concepts.vectors.astype(np.float32), np.asarray(concept)[order], x


def errors(maps, delta, reference):
    n = len(maps)
    total = maps.reshape(n, -1).sum(axis=1)
    pooled = np.abs(total - delta).sum() / np.abs(delta).sum()
    median = np.median(np.abs(total - delta) / np.abs(delta))
    map_error = np.median(np.linalg.norm((maps - reference).reshape(n, -1), axis=1)
                          / np.linalg.norm(reference.reshape(n, -1), axis=1))
    return pooled, median, map_error


def study(model_dir: Path, args) -> None:
    from concept_saliency.saliency import IntegratedGradients
    from concept_saliency.saliency.methods import _baseline

    encoder, vectors, concept, x = load(model_dir, args.per_concept)
    explainer = IntegratedGradients(encoder, vectors, chunk_size=args.chunk_size)
    for baseline in args.baselines:
        base = _baseline(x, baseline)
        delta = (explainer.scores(x, concept) - explainer.scores(base, concept)).astype(np.float64)
        t0 = time.time()
        reference = explainer.attribute(x, concept, steps=args.reference_steps, baseline=baseline,
                                        integration=OLD).astype(np.float64)
        print(f"\n{model_dir} (input {x.shape[1:]}), baseline {baseline}: {len(x)} samples; reference: "
              f"{OLD} with {args.reference_steps} steps ({time.time() - t0:.0f} s), its completeness "
              f"error {errors(reference, delta, reference)[0]:.2e}", flush=True)
        head = "".join(f"{rule:>34s}" for rule in args.rules)
        print(f"{'steps':>5s}{head}\n{'':5s}" + "".join(f"{'completeness (median)   map err':>34s}"
                                                         for _ in args.rules), flush=True)
        table = {}
        for steps in args.steps:
            cells = []
            for rule in args.rules:
                maps = explainer.attribute(x, concept, steps=steps, baseline=baseline, integration=rule)
                table[rule, steps] = errors(maps.astype(np.float64), delta, reference)
                pooled, median, map_error = table[rule, steps]
                cells.append(f"{pooled:12.2e} ({median:8.2e}) {map_error:10.2e}")
            print(f"{steps:5d}" + "".join(f"{cell:>34s}" for cell in cells), flush=True)
        print(f"completeness at steps/2 over {OLD}'s at steps:")
        for rule in args.rules:
            ratios = [f"{steps}: {table[rule, steps // 2][0] / table[OLD, steps][0]:.2f}"
                      for steps in args.steps if (rule, steps // 2) in table]
            print(f"  {rule:16s} " + "  ".join(ratios), flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, nargs="+", required=True,
                        help="model folders of workflow results (results/<dataset>/<model>)")
    parser.add_argument("--steps", type=int, nargs="+", default=[8, 16, 32, 64, 128])
    parser.add_argument("--rules", nargs="+", default=[OLD, "adaptive", "trapezoid", "gausslegendre"])
    parser.add_argument("--baselines", nargs="+", default=["zeros", "mean"])
    parser.add_argument("--per-concept", type=int, default=4, help="explained samples of each concept")
    parser.add_argument("--reference-steps", type=int, default=2048)
    parser.add_argument("--chunk-size", type=int, default=256)
    args = parser.parse_args(argv)
    import keras

    print(f"Keras {keras.__version__} on {keras.backend.backend()}, {os.cpu_count()} CPU cores")
    for model_dir in args.results:
        study(model_dir, args)


if __name__ == "__main__":
    sys.exit(main())
