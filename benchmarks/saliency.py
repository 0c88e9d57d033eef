"""Saliency engine benchmark: maps/s of every method, and competitors, side by side in one run.

The encoder is the paper's CelebA encoder (preset ``paper-celeba``: 128x128 RGB,
latent 400), with seeded random weights (speed does not depend on training);
the concept vector is random. For batch sizes 1, 16 and 64 it prints

- maps/s of each of our methods (TensorFlow graph mode on CPU, or the backend
  in ``KERAS_BACKEND``), and the compiled forward pass of the same encoder;
- vanilla-gradient time / forward time (the floor is about 2) and
  integrated-gradients (32 steps) time / vanilla-gradient time (the floor is 32);
- the same encoder in PyTorch (weights copied, outputs checked equal) with
  Captum's Saliency, IntegratedGradients (32 steps) and GuidedBackprop, and
  tf-keras-vis' Saliency on the Keras model, at the same batch size, and how
  much faster we are.

Competitors are installed for the benchmark only (see benchmarks/requirements.txt)::

    python -m pip install --target /tmp/bench-extras -r benchmarks/requirements.txt
    PYTHONPATH=src:/tmp/bench-extras python benchmarks/saliency.py

With ``--before SRC`` (a source folder holding the ``concept_saliency`` package before a
change, e.g. ``git worktree add /tmp/before <commit>`` then ``--before /tmp/before/src``)
that engine runs too, as contenders ``before <name>`` in the same rounds, on a twin of the
encoder with the same weights: before/after ratios measured side by side.

A missing competitor is skipped with a message. Times are the median of
``--repeats`` rounds after a warm-up, each round running every contender once in
turn (in a new random order each round), so that all see the same machine load.
Expensive methods run once: their time is a sum over many chunks, itself an
average, so it is compared with the typical (median) time of the cheap ones, not
with their best. The machine may be shared, so compare the ratios of one run
rather than absolute times across runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore", message="The structure of `inputs` doesn't match")  # tf-keras-vis

import numpy as np  # noqa: E402

IG_STEPS = 32
OPTIONS = {  # the benchmark's settings (method defaults otherwise)
    "smoothgrad": {"samples": 8},
    "integrated_gradients": {"steps": IG_STEPS},
    "occlusion": {"window": 16, "stride": 16},
}
EXPENSIVE = {"smoothgrad", "integrated_gradients", "occlusion", "captum IntegratedGradients"}
EXPENSIVE |= {f"before {name}" for name in EXPENSIVE}


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def build_encoder(seed: int = 0):
    import keras

    from concept_saliency.model import build_encoder as build, get_preset, latent_model

    keras.utils.set_random_seed(seed)
    encoder = build(get_preset("paper-celeba"), (128, 128, 3))
    rng = np.random.default_rng(seed)
    for layer in encoder.layers:  # non-trivial batch-norm statistics, as after training
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.1, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, layer.moving_variance.shape))
    return latent_model(encoder)


# ---------------------------------------------------------------- competitors


def torch_twin(latent):
    """The same encoder in PyTorch (NCHW), with the Keras weights; None if torch is missing."""
    try:
        import torch
        from torch import nn
    except ImportError:
        return None

    class Twin(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList()
            self.pads = []
            flat = False  # batch norm after Flatten/Dense normalises features, not channels
            for layer in latent.layers:
                name = type(layer).__name__
                if name == "Conv2D":
                    k, s = layer.kernel_size[0], layer.strides[0]
                    w, b = layer.get_weights()
                    conv = nn.Conv2d(w.shape[2], w.shape[3], k, stride=s)
                    conv.weight.data = torch.tensor(w.transpose(3, 2, 0, 1).copy())
                    conv.bias.data = torch.tensor(b)
                    total = max(k - s, 0)  # TF 'same' with even inputs: extra padding at the end
                    self.blocks.append(nn.Sequential(nn.ZeroPad2d((total // 2, total - total // 2,
                                                                   total // 2, total - total // 2)), conv))
                elif name == "BatchNormalization":
                    g, beta, mean, var = layer.get_weights()
                    bn = (nn.BatchNorm1d if flat else nn.BatchNorm2d)(len(g), eps=layer.epsilon)
                    bn.weight.data, bn.bias.data = torch.tensor(g), torch.tensor(beta)
                    bn.running_mean.data, bn.running_var.data = torch.tensor(mean), torch.tensor(var)
                    self.blocks.append(bn)
                elif name == "ReLU":
                    self.blocks.append(nn.ReLU())
                elif name == "Flatten":  # Keras flattens NHWC
                    flat = True
                    self.blocks.append(nn.Flatten())
                    self.blocks[-1].forward = lambda t: t.permute(0, 2, 3, 1).reshape(len(t), -1)
                elif name == "Dense":
                    w, b = layer.get_weights()
                    dense = nn.Linear(*w.shape)
                    dense.weight.data, dense.bias.data = torch.tensor(w.T.copy()), torch.tensor(b)
                    self.blocks.append(dense)

        def forward(self, x):
            for block in self.blocks:
                x = block(x)
            return x

    return Twin().eval()


def competitors(latent, c, x_probe):
    """name -> f(x) giving maps (or a message string when the package is missing)."""
    out = {}
    twin = torch_twin(latent)
    if twin is None:
        msg = "skipped: torch is not installed (pip install -r benchmarks/requirements.txt)"
        out.update({"captum Saliency": msg, "captum IntegratedGradients": msg, "captum GuidedBackprop": msg})
    else:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        ct = torch.tensor(c)

        class Score(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, x):
                return (self.m(x) * ct).sum(dim=1)

        score = Score(twin).eval()
        with torch.no_grad():
            ours = np.asarray(latent(x_probe, training=False)) @ c
            theirs = score(torch.tensor(x_probe.transpose(0, 3, 1, 2).copy())).numpy()
        assert np.allclose(ours, theirs, rtol=1e-3, atol=1e-3 * np.abs(ours).max()), (ours, theirs)
        try:
            from captum.attr import GuidedBackprop, IntegratedGradients, Saliency
        except ImportError:
            msg = "skipped: captum is not installed (pip install -r benchmarks/requirements.txt)"
            out.update({"captum Saliency": msg, "captum IntegratedGradients": msg,
                        "captum GuidedBackprop": msg})
        else:
            def nchw(x):
                return torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=True)

            sal, ig, gbp = Saliency(score), IntegratedGradients(score), GuidedBackprop(score)
            out["captum Saliency"] = lambda x: sal.attribute(nchw(x), abs=False).numpy()
            out["captum IntegratedGradients"] = lambda x: ig.attribute(
                nchw(x), n_steps=IG_STEPS, internal_batch_size=64).detach().numpy()
            out["captum GuidedBackprop"] = lambda x: gbp.attribute(nchw(x)).detach().numpy()
    try:
        from tf_keras_vis.saliency import Saliency as KerasVisSaliency
    except ImportError:
        out["tf-keras-vis Saliency"] = ("skipped: tf-keras-vis is not installed "
                                        "(pip install -r benchmarks/requirements.txt)")
    else:
        import keras

        if keras.backend.backend() != "tensorflow":
            out["tf-keras-vis Saliency"] = "skipped: tf-keras-vis needs the tensorflow backend"
        else:
            vis = KerasVisSaliency(latent, clone=False)
            cv = c.astype(np.float32)
            out["tf-keras-vis Saliency"] = lambda x: vis(lambda z: keras.ops.sum(z * cv, axis=1), x,
                                                         normalize_map=False, keepdims=True)
    return out


# ---------------------------------------------------------------- main


def import_before(src: str):
    """The saliency package of ``src`` (a copy named ``concept_saliency_before``: its imports
    are relative, so it runs beside this one)."""
    import importlib
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="engine-before-")
    shutil.copytree(os.path.join(src, "concept_saliency"), os.path.join(folder, "concept_saliency_before"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    sys.path.insert(0, folder)
    return (importlib.import_module("concept_saliency_before.saliency"),
            importlib.import_module("concept_saliency_before.saliency.autodiff"))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--methods", nargs="+", default=None, help="our methods (default: all)")
    parser.add_argument("--no-competitors", action="store_true")
    parser.add_argument("--before", metavar="SRC", help="also run the engine of SRC/concept_saliency")
    args = parser.parse_args(argv)

    import keras

    from concept_saliency.saliency import METHODS, get_method
    from concept_saliency.saliency.autodiff import ScoreGradient

    methods = args.methods or list(METHODS)
    latent = build_encoder()
    rng = np.random.default_rng(1)
    c = rng.normal(size=400).astype(np.float32)
    x_all = rng.random((max(args.batches), 128, 128, 3)).astype(np.float32)
    engine = ScoreGradient(latent, chunk_size=64)
    explainers = {m: get_method(m)(latent, c, chunk_size=64) for m in methods}
    others = {} if args.no_competitors else competitors(latent, c, x_all[:2])
    before = {}
    if args.before:
        old, old_autodiff = import_before(args.before)
        twin = build_encoder()  # (the same weights; its own compiled functions)
        old_engine = old_autodiff.ScoreGradient(twin, chunk_size=64)
        before["before forward"] = lambda x: old_engine.scores(x, np.broadcast_to(c, (len(x), 400)))
        for m in methods:
            explainer = old.get_method(m)(twin, c, chunk_size=64)
            before[f"before {m}"] = (lambda x, e=explainer, m=m: e.attribute(x, **OPTIONS.get(m, {})))
    print(f"paper-celeba encoder (128x128x3 -> 400), Keras {keras.__version__} on "
          f"{keras.backend.backend()}, {os.cpu_count()} CPU cores; options {OPTIONS}", flush=True)

    rate: dict[str, dict[int, float]] = {}
    seconds: dict[str, dict[int, float]] = {}

    def report(name, batch, t):
        seconds.setdefault(name, {})[batch] = t
        rate.setdefault(name, {})[batch] = batch / t
        print(f"  batch {batch:3d}  {name:28s} {batch / t:9.2f} maps/s  ({t:.3f} s)", flush=True)

    for batch in args.batches:
        x = x_all[:batch]
        runs = {"forward": lambda x: engine.scores(x, np.broadcast_to(c, (len(x), 400)))}
        runs.update({m: (lambda x, m=m: explainers[m].attribute(x, **OPTIONS.get(m, {}))) for m in methods})
        runs.update({name: fn for name, fn in others.items() if not isinstance(fn, str)})
        runs.update(before)
        for fn in runs.values():
            fn(x[:1])  # warm-up: traces once; the batch dimension is free
        # cheap runs interleaved, median of `repeats` rounds: every contender sees the same
        # machine load (the machine may be shared); expensive ones once
        rounds: dict[str, list[float]] = {name: [] for name in runs}
        order = np.random.default_rng(batch)
        for _ in range(args.repeats):
            # a new order each round: whoever runs right after PyTorch or tf-keras-vis (their
            # threads still winding down) is a different contender each time
            for name in order.permutation([n for n in runs if n not in EXPENSIVE]):
                rounds[name].append(timed(lambda: runs[name](x)))
        for name, fn in runs.items():
            report(name, batch, timed(lambda: fn(x)) if name in EXPENSIVE
                   else float(np.median(rounds[name])))

    # ---- the table
    cols = args.batches
    print("\nmaps/s (forward: samples/s)" + "".join(f"{'batch ' + str(b):>12s}" for b in cols))
    for name in rate:
        print(f"{name:28s}" + "".join(f"{rate[name].get(b, float('nan')):12.2f}" for b in cols))
    for name, fn in others.items():
        if isinstance(fn, str):
            print(f"{name:28s} {fn}")
    for prefix in ("", "before ") if before else ("",):
        if prefix + "vanilla_gradient" not in seconds:
            continue
        print(f"\nratios{' (before)' if prefix else ''}" + " " * (22 - (9 if prefix else 0))
              + "".join(f"{'batch ' + str(b):>12s}" for b in cols))
        v, f = seconds[prefix + "vanilla_gradient"], seconds[prefix + "forward"]
        print(f"{'vanilla gradient / forward':28s}" + "".join(f"{v[b] / f[b]:12.2f}" for b in cols))
        for m in methods:
            if m != "vanilla_gradient" and prefix + m in seconds:
                label = "IG (32 steps)" if m == "integrated_gradients" else m
                print(f"{label + ' / vanilla':28s}" + "".join(f"{seconds[prefix + m][b] / v[b]:12.2f}"
                                                             for b in cols))
    if "vanilla_gradient" in seconds:
        pairs = [("vanilla_gradient", "captum Saliency"), ("vanilla_gradient", "tf-keras-vis Saliency"),
                 ("integrated_gradients", "captum IntegratedGradients"),
                 ("guided_backprop", "captum GuidedBackprop")]
        for ours, theirs in pairs:
            if ours in rate and theirs in rate:
                print(f"{'ours / ' + theirs:28s}" + "".join(f"{rate[ours][b] / rate[theirs][b]:11.2f}x"
                                                           for b in cols))


if __name__ == "__main__":
    sys.exit(main())
