"""Training, data loading, saliency and crop-and-pack on the GPU machine, side by side, in one run.

One process measures, and prints as one table:

- training images/s of ``paper-celeba`` (128x128, latent 400) with the project's own training
  code on Keras/JAX (``build_vae(precision=...)``, ``compile_vae``, ``BatchLoader(raw=True)``
  streaming from a packed HDF5 store, ``fit`` with training's per-step callback) at fp32
  batch 64, bf16 batch 64 and bf16 batch 256, against the same network written in plain
  PyTorch (same batch and precision, batch held on the GPU, ``torch.autocast`` for bf16);
- the loader alone (BatchLoader from the HDF5 store) against what training consumes, and
  training from the HDF5 loader against the same batch held in memory (ratio);
- saliency maps/s of vanilla gradient (batch 256) and integrated gradients (32 steps, batch
  32) with our engine on JAX against Captum (Saliency, IntegratedGradients) on the PyTorch
  encoder: Captum both with the batch and maps on the GPU (its best case) and host to host
  (numpy in, numpy out, as our engine's API and the saliency stage work);
- crop-and-pack images/s on 1 worker and on every core, on synthetic 178x218 JPEGs (made
  here), and the projected time for CelebA's 202,599 images.

Every figure is timed after a warm-up (compilation, autotuning excluded), with
``jax.block_until_ready`` / ``torch.cuda.synchronize`` before the clock is read. The
network weights are random (speed does not depend on them); the images are synthetic.

On the GPU machine (JAX, PyTorch, h5py there; no TensorFlow, no network), with the carried
wheels of keras, namex, optree and captum::

    pip install --no-index --no-deps --target /tmp/site whl/*.whl
    PYTHONPATH=src:/tmp/site python3 benchmarks/device/run.py --out $OUT

Here (CPU, tiny sizes, a couple of minutes; torch and captum from /tmp/bench-extras)::

    PYTHONPATH=src:/tmp/bench-extras python benchmarks/device/run.py --quick
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path


FULL = dict(preset="paper-celeba", size=128, train=[("float32", 64), ("float32+tf32", 64),
                                                     ("mixed_bfloat16", 64), ("mixed_bfloat16", 256)],
            warm=8, steps=60, min_steps=20, store_images=256 * 48, loader_batches=40,
            vg_batch=256, ig_batch=32, ig_steps=32, sal_repeats=10,
            crop_images=24_000, crop_images_1=3_000)
QUICK = dict(preset="celeba-32", size=32, train=[("float32", 8), ("float32+tf32", 8),
                                                  ("mixed_bfloat16", 8), ("mixed_bfloat16", 16)],
             warm=2, steps=4, min_steps=2, store_images=16 * 12, loader_batches=8,
             vg_batch=8, ig_batch=4, ig_steps=4, sal_repeats=2,
             crop_images=200, crop_images_1=100)

ROWS: list[dict] = []
OUT: Path = Path(".")


def log(msg):
    print(msg, flush=True)


def record(section, what, ours=None, reference=None, unit="img/s", note="", target=None):
    """``target``: a test of (ours, reference) saying whether the issue's target is met."""
    row = {"section": section, "what": what, "ours": ours, "reference": reference, "unit": unit,
           "ratio": (ours / reference) if ours and reference else None, "note": note,
           "target_met": None if target is None or ours is None or reference is None
           else bool(target(ours, reference))}
    ROWS.append(row)
    log(f"  {section:10s} {what:52s} ours={_fmt(ours)} ref={_fmt(reference)} {unit} {note}")
    (OUT / "results.json").write_text(json.dumps(ROWS, indent=1))


def _fmt(v):
    return "-" if v is None else (f"{v:,.0f}" if v >= 100 else f"{v:.3g}")


def table() -> str:
    lines = ["| section | what | ours | reference | ours / reference | target met | note |",
             "| --- | --- | ---: | ---: | ---: | --- | --- |"]
    for r in ROWS:
        ratio = "-" if r["ratio"] is None or r["unit"] == "ratio" else f"{r['ratio']:.2f}x"
        met = {None: "-", True: "yes", False: "NO"}[r["target_met"]]
        lines.append(f"| {r['section']} | {r['what']} ({r['unit']}) | {_fmt(r['ours'])} | "
                     f"{_fmt(r['reference'])} | {ratio} | {met} | {r['note']} |")
    return "\n".join(lines)


# ------------------------------------------------------------------ the PyTorch twin


def torch_vae(preset, input_shape):
    """The network of ``preset`` in plain PyTorch (NCHW): same layers, widths and kernels.

    'same' padding as (k - 1) // 2 each side (Keras pads even kernels one more at the end:
    same output sizes and arithmetic, the window is shifted by one pixel for k = 2, 4).
    """
    import torch
    from torch import nn

    h, w, ch = input_shape
    down = 2 ** len(preset.conv_filters)
    h0, w0 = h // down, w // down
    brocki = preset.layout == "brocki2019"

    def conv(cin, cout, k):
        return nn.Conv2d(cin, cout, k, stride=2, padding=(k - 1) // 2)

    def deconv(cin, cout, k):
        p = (k - 1) // 2
        return nn.ConvTranspose2d(cin, cout, k, stride=2, padding=p, output_padding=2 * p - k + 2)

    enc, cin = [], ch
    for f, k in zip(preset.conv_filters, preset.conv_kernels):
        enc += [conv(cin, f, k), nn.ReLU(), nn.BatchNorm2d(f)] if brocki else \
               [conv(cin, f, k), nn.BatchNorm2d(f), nn.ReLU()]
        cin = f
    enc.append(nn.Flatten())
    units = cin * h0 * w0
    for u in preset.dense_units:
        enc += [nn.Linear(units, u), nn.ReLU()] + ([nn.BatchNorm1d(u)] if brocki else [])
        units = u
    last = preset.conv_filters[-1]

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(*enc)
            self.z_mean = nn.Linear(units, preset.latent_dim)
            self.z_log_var = nn.Linear(units, preset.latent_dim)

        def forward(self, x):
            t = self.body(x)
            return self.z_mean(t), self.z_log_var(t)

    dec = []
    if brocki:
        dec += [nn.Linear(preset.latent_dim, h0 * w0 * last), nn.ReLU(),
                nn.Unflatten(1, (last, h0, w0)), nn.BatchNorm2d(last)]
        cin = last
        for f, k in zip(reversed(preset.conv_filters), reversed(preset.conv_kernels)):
            dec += [deconv(cin, f, k), nn.ReLU(), nn.BatchNorm2d(f)]
            cin = f
        dec += [nn.Conv2d(cin, ch, preset.conv_kernels[0], padding=(preset.conv_kernels[0] - 1) // 2),
                nn.Sigmoid()]
    else:
        u_in = preset.latent_dim
        for u in reversed(preset.dense_units):
            dec += [nn.Linear(u_in, u), nn.ReLU()]
            u_in = u
        dec += [nn.Linear(u_in, h0 * w0 * last), nn.ReLU(), nn.Unflatten(1, (last, h0, w0))]
        cin = last
        kernels = list(reversed(preset.conv_kernels))
        for f, k in zip(reversed(preset.conv_filters[:-1]), kernels):
            dec += [deconv(cin, f, k), nn.BatchNorm2d(f), nn.ReLU()]
            cin = f
        dec += [deconv(cin, ch, kernels[-1]), nn.Sigmoid()]

    class VAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = Encoder()
            self.decoder = nn.Sequential(*dec)
            self.kl_weight = preset.kl_weight

        def loss(self, x):
            z_mean, z_log_var = self.encoder(x)
            z = z_mean + torch.exp(0.5 * z_log_var) * torch.randn_like(z_mean)
            r = self.decoder(z).float().clamp(1e-7, 1 - 1e-7)
            bce = -(x * torch.log(r) + (1 - x) * torch.log(1 - r)).flatten(1).mean(1).mean()
            zm, zl = z_mean.float(), z_log_var.float()
            kl = (-0.5 * (1 + zl - zm.square() - zl.exp()).sum(1)).mean()
            return bce + self.kl_weight * kl

    return VAE()


def torch_train_rate(preset, shape, precision, batch, warm, steps, device) -> float:
    import numpy as np
    import torch

    torch.manual_seed(0)
    model = torch_vae(preset, shape).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=preset.learning_rate)
    x = torch.tensor(np.random.default_rng(0).random((batch, shape[2], shape[0], shape[1]),
                                                     dtype=np.float32), device=device)
    dtype = torch.bfloat16 if precision == "mixed_bfloat16" else None

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype is not None):
            loss = model.loss(x)
        loss.backward()
        opt.step()
        return loss

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warm):
        loss = step()
    sync()
    assert torch.isfinite(loss).item(), "torch loss is not finite"
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    rate = steps * batch / (time.perf_counter() - t0)
    return rate


# ------------------------------------------------------------------ the project's side


def block(vae):
    """Wait for the device work on ``vae``'s weights (JAX dispatches asynchronously)."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        jax.block_until_ready([v.value for v in vae.trainable_variables])
    else:
        keras.ops.convert_to_numpy(vae.trainable_variables[0].value)


class Fixed:
    """The same uint8 batch, held in memory, served ``n`` times (a PyDataset)."""

    def __new__(cls, batch, n):
        import keras

        class _Fixed(keras.utils.PyDataset):
            def __len__(self):
                return n

            def __getitem__(self, i):
                return batch

        return _Fixed()


def bench_callbacks(n_train, steps):
    """Training's own per-step callback (NaN check, progress log), without the epoch's save."""
    from concept_saliency.training import StepMonitor

    return [StepMonitor(n_train, steps)]


def keras_fit_rate(vae, data, batch, warm, steps) -> float:
    from concept_saliency.training import FIT_OPTIONS

    cbs = bench_callbacks(steps * batch, steps)
    vae.fit(data, epochs=1, steps_per_epoch=warm, callbacks=cbs, **FIT_OPTIONS)
    block(vae)
    t0 = time.perf_counter()
    hist = vae.fit(data, epochs=1, steps_per_epoch=steps, callbacks=cbs, **FIT_OPTIONS)
    block(vae)
    dt = time.perf_counter() - t0
    loss = hist.history["loss"][-1]
    assert loss == loss and abs(loss) != float("inf"), f"loss {loss}"
    return steps * batch / dt


def make_store(path, n, size):
    """A packed sample store of ``n`` synthetic size x size RGB uint8 images (compressible:
    smooth blocks plus noise, as photos), written with the project's sample-store writer."""
    import numpy as np

    from concept_saliency.data.samples import assign_split, create_sample_store

    rng = np.random.default_rng(0)
    ids = [f"{i:06d}" for i in range(n)]
    with create_sample_store(path, n, (size, size, 3), np.uint8, ids, assign_split(n, 0.0, 0)) as ds:
        for a in range(0, n, 1024):
            m = min(1024, n - a)
            base = rng.integers(0, 240, (m, size // 8, size // 8, 3), dtype=np.uint8)
            block_ = np.repeat(np.repeat(base, 8, axis=1), 8, axis=2)
            ds[a:a + m] = block_ + rng.integers(0, 16, block_.shape, dtype=np.uint8)


def section_train(cfg, device_t, work):
    import jax
    import numpy as np

    from concept_saliency.data.loader import BatchLoader
    from concept_saliency.data.samples import SampleStore
    from concept_saliency.model import build_vae, get_preset
    from concept_saliency.training import compile_vae

    preset = get_preset(cfg["preset"])
    shape = (cfg["size"], cfg["size"], 3)
    store_path = work / "samples.h5"
    t0 = time.perf_counter()
    make_store(store_path, cfg["store_images"], cfg["size"])
    log(f"  wrote {cfg['store_images']} images to {store_path} in {time.perf_counter() - t0:.1f}s")

    # PyTorch first: it gives its cached memory back before JAX allocates (no preallocation)
    def steps_of(batch):  # about the same number of images timed at every batch size
        return max(cfg["steps"] * cfg["train"][0][1] // batch, cfg["min_steps"])

    torch_rates = {}
    for precision, batch in cfg["train"]:
        if precision == "float32+tf32":  # PyTorch's float32 already uses TF32 in cuDNN convolutions
            continue
        try:
            torch_rates[(precision, batch)] = torch_train_rate(
                preset, shape, precision, batch, cfg["warm"], steps_of(batch), device_t)
        except Exception as exc:  # noqa: BLE001 - report and go on
            log(f"  torch {precision} {batch}: {type(exc).__name__}: {exc}")
            torch_rates[(precision, batch)] = None
        _torch_free()
    consumption = {}
    with SampleStore(str(store_path)) as store:
        idx = np.arange(len(store))
        for precision, batch in cfg["train"]:
            names = {"float32": "fp32", "float32+tf32": "fp32, TF32 on in XLA", "mixed_bfloat16": "bf16"}
            label = f"train {cfg['preset']} {names[precision]} batch {batch}"
            ref = torch_rates.get((precision.replace("+tf32", ""), batch))
            try:
                vae = build_vae(preset, shape, seed=0, precision=precision.replace("+tf32", ""))
                compile_vae(vae, preset.learning_rate)
                tf32 = jax.default_matmul_precision("tensorfloat32" if "tf32" in precision else None)
                loader = BatchLoader(store, idx, batch, shuffle=True, seed=0, cache_bytes=0, raw=True)
                steps = steps_of(batch)
                assert cfg["warm"] + steps <= len(loader), "the store is too small for the steps"
                t0 = time.perf_counter()
                with tf32:  # traced and compiled inside fit
                    rate = keras_fit_rate(vae, loader, batch, cfg["warm"], steps)
                    log(f"  ({label}: warm-up, compile and timing took {time.perf_counter() - t0:.1f}s)")
                    held = Fixed(loader[0], cfg["warm"] + steps)
                    rate_mem = keras_fit_rate(vae, held, batch, 2, steps)
            except Exception as exc:  # noqa: BLE001
                msg = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
                log(f"  {label}: {msg}")
                record("train", label + ", HDF5 loader", None, ref, note="FAILED " + msg)
                continue
            finally:
                vae = None
                gc.collect()
            consumption[(precision, batch)] = rate
            record("train", label + ", HDF5 loader", rate, ref,
                   note="ref: PyTorch, batch held on the device; target: at least PyTorch",
                   target=lambda o, r: o >= r)
            record("train", label + ", same batch held in memory", rate_mem, None)
            record("loader", f"{label}: in memory / HDF5 loader", rate_mem / rate, 1.1,
                   unit="ratio", note="ref: the target, at most 1.1", target=lambda o, r: o <= r)
        # the loader alone, as training reads it (uint8, streaming from the store)
        for precision, batch in cfg["train"][-1:]:
            loader = BatchLoader(store, idx, batch, shuffle=True, seed=1, cache_bytes=0, raw=True)
            n = min(cfg["loader_batches"], len(loader))
            loader[0]
            t0 = time.perf_counter()
            for i in range(n):
                loader[i]
            alone = n * batch / (time.perf_counter() - t0)
            used = consumption.get((precision, batch))
            record("loader", f"loader alone batch {batch} vs training consumption", alone, used,
                   note="ref: training's img/s from the loader; target: at least 1.5x",
                   target=lambda o, r: o >= 1.5 * r)


def _torch_free():
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def section_saliency(cfg, device_t):
    import jax
    import keras
    import numpy as np
    import torch

    from concept_saliency.model import build_encoder, get_preset, latent_model
    from concept_saliency.saliency import IntegratedGradients, VanillaGradient

    preset = get_preset(cfg["preset"])
    shape = (cfg["size"], cfg["size"], 3)
    rng = np.random.default_rng(0)
    c = rng.normal(size=preset.latent_dim).astype(np.float32)
    sync = torch.cuda.synchronize if device_t.type == "cuda" else (lambda: None)

    # Captum on the PyTorch encoder (eval mode), first
    from captum.attr import IntegratedGradients as CIG
    from captum.attr import Saliency

    torch.manual_seed(0)
    enc = torch_vae(preset, shape).encoder.to(device_t).eval()
    ct = torch.tensor(c, device=device_t)

    def score(x):
        return (enc(x)[0] * ct).sum(1)

    sal, ig = Saliency(score), CIG(score)
    captum = {}
    for name, batch, run in (
        ("vanilla gradient", cfg["vg_batch"], lambda x: sal.attribute(x, abs=False)),
        ("integrated gradients", cfg["ig_batch"],
         lambda x: ig.attribute(x, baselines=0.0, n_steps=cfg["ig_steps"], method="riemann_middle")),
    ):
        x_host = rng.random((batch, 3, *shape[:2]), dtype=np.float32)
        x_dev = torch.tensor(x_host, device=device_t, requires_grad=True)

        def on_device():
            return run(x_dev)

        def host_to_host():
            xt = torch.from_numpy(x_host).to(device_t).requires_grad_()
            return run(xt).detach().cpu().numpy()

        for label, fn in (("on GPU", on_device), ("host to host", host_to_host)):
            fn()
            sync()
            times = []
            for _ in range(cfg["sal_repeats"]):
                t0 = time.perf_counter()
                fn()
                sync()
                times.append(time.perf_counter() - t0)
            captum[(name, label)] = batch / float(np.median(times))
    del enc, sal, ig
    _torch_free()

    keras.utils.set_random_seed(0)
    latent = latent_model(build_encoder(preset, shape))
    ours = {}
    for name, batch in (("vanilla gradient", cfg["vg_batch"]), ("integrated gradients", cfg["ig_batch"])):
        x = rng.random((batch, *shape), dtype=np.float32)
        if name == "vanilla gradient":
            method = VanillaGradient(latent, c, chunk_size=batch)
            fn = lambda: method.attribute(x)  # noqa: E731
        else:
            method = IntegratedGradients(latent, c, chunk_size=batch * cfg["ig_steps"])
            fn = lambda: method.attribute(x, steps=cfg["ig_steps"])  # noqa: E731
        maps = fn()
        assert maps.shape == x.shape and np.isfinite(maps).all()
        times = []
        for _ in range(cfg["sal_repeats"]):
            t0 = time.perf_counter()
            out = fn()  # numpy out: the device work is finished when it returns
            times.append(time.perf_counter() - t0)
        jax.block_until_ready(out)
        ours[name] = batch / float(np.median(times))
    for name, batch in (("vanilla gradient", cfg["vg_batch"]), ("integrated gradients", cfg["ig_batch"])):
        steps = f", {cfg['ig_steps']} steps" if name == "integrated gradients" else ""
        record("saliency", f"{name}{steps}, batch {batch}, host to host", ours[name],
               captum[(name, "host to host")], unit="maps/s",
               note="ref: Captum host to host (numpy in and out, as ours); target 2x",
               target=lambda o, r: o >= 2 * r)
        record("saliency", f"{name}{steps}, batch {batch}, vs Captum on device", ours[name],
               captum[(name, "on GPU")], unit="maps/s",
               note="ours host to host; ref: Captum with batch and maps on the device; target 2x",
               target=lambda o, r: o >= 2 * r)


def section_crop(cfg, work):
    """crop_and_pack on synthetic 178x218 JPEGs: 1 worker and every core."""
    import numpy as np
    from PIL import Image

    from concept_saliency.data.celeba import LANDMARKS, crop_and_pack

    landmarks_1 = [69, 109, 106, 113, 77, 142, 73, 152, 108, 154]  # 000001.jpg's
    rng = np.random.default_rng(0)
    distinct = []
    for _ in range(64):
        base = rng.integers(0, 256, (218 // 8 + 1, 178 // 8 + 1, 3), dtype=np.uint8)
        img = Image.fromarray(base).resize((178, 218), Image.BILINEAR)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        distinct.append(buf.getvalue())
    cores = os.cpu_count() or 1
    results = {}
    for workers, n in ((1, cfg["crop_images_1"]), (cores, cfg["crop_images"])):
        d = work / f"crop{workers}"
        folder = d / "img_align_celeba"
        folder.mkdir(parents=True, exist_ok=True)
        ids = [f"{i:06d}" for i in range(1, n + 1)]
        for i, sid in enumerate(ids):
            (folder / f"{sid}.jpg").write_bytes(distinct[i % len(distinct)])
        lm = d / "landmarks.csv"
        lm.write_text(",".join(["image_id", *LANDMARKS]) + "\n" + "".join(
            f"{sid}.jpg," + ",".join(map(str, landmarks_1)) + "\n" for sid in ids))
        at = d / "attrs.csv"
        at.write_text("image_id,Smiling\n" + "".join(f"{sid}.jpg,{1 if i % 2 else -1}\n"
                                                     for i, sid in enumerate(ids)))
        t0 = time.perf_counter()
        info = crop_and_pack(folder, at, lm, d / "s.h5", d / "r.txt", image_size=cfg["size"],
                             workers=workers)
        dt = time.perf_counter() - t0
        assert info["counts"]["images packed"] == n, info["counts"]
        results[workers] = (n, dt)
    n1, t1 = results[1]
    nn, tn = results[cores]
    per_core_1 = n1 / t1
    rate_all = nn / tn
    record("crop-pack", f"178x218 JPEG -> {cfg['size']}x{cfg['size']}, 1 worker ({n1} images)",
           per_core_1, None, note="images/s per core (includes the fixed cost of reading tables)")
    record("crop-pack", f"{cores} workers ({nn} images), per core", rate_all / cores, per_core_1,
           note=f"{rate_all:,.0f} images/s in all; ref = 1 worker")
    record("crop-pack", f"projected 202,599 images on {cores} cores", 202_599 / rate_all, 300,
           unit="s", note="ref: the target, under 300 s", target=lambda o, r: o < r)
    record("crop-pack", "projected 202,599 images on 16 cores at the 1-worker rate",
           202_599 / (16 * per_core_1), 300, unit="s",
           note="if the per-core rate held on 16 cores", target=lambda o, r: o < r)


def run_section(name, fn):
    t0 = time.perf_counter()
    log(f"== {name}")
    try:
        fn()
    except Exception:  # noqa: BLE001 - the other sections still run
        traceback.print_exc()
        record(name, "section failed", note=traceback.format_exc().splitlines()[-1][:200])
    log(f"== {name} took {time.perf_counter() - t0:.0f}s")


def main(argv=None):
    global OUT
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes on the CPU (a check, not figures)")
    ap.add_argument("--out", default=os.environ.get("OUT", "/tmp/bench-device"))
    ap.add_argument("--sections", default="crop,train,saliency")
    ap.add_argument("--train", default=None,
                    help="training cases instead of the default ones, e.g. mixed_bfloat16:64,float32:64")
    args = ap.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    if args.train:
        cfg["train"] = [(p, int(b)) for p, b in (case.split(":") for case in args.train.split(","))]
    OUT = Path(args.out)
    OUT.mkdir(parents=True, exist_ok=True)
    sys.modules["tensorflow"] = None  # as on the GPU machine: Keras runs on JAX alone
    os.environ["KERAS_BACKEND"] = "jax"
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # PyTorch shares the GPU
    if args.quick:
        os.environ["JAX_PLATFORMS"] = "cpu"

    t_all = time.perf_counter()
    work_dir = tempfile.TemporaryDirectory()
    work = Path(work_dir.name)
    sections = args.sections.split(",")
    if "crop" in sections:  # first: its worker processes are forked before JAX starts threads
        run_section("crop", lambda: section_crop(cfg, work))
    import jax
    import keras
    import torch

    device_t = torch.device("cuda" if torch.cuda.is_available() and not args.quick else "cpu")
    if device_t.type == "cuda":
        torch.backends.cudnn.benchmark = True
    info = (f"jax {jax.__version__} on {jax.devices()[0].device_kind}; keras {keras.__version__} "
            f"({keras.backend.backend()}); torch {torch.__version__} on "
            f"{torch.cuda.get_device_name() if device_t.type == 'cuda' else 'cpu'}; "
            f"{os.cpu_count()} CPU cores; {'--quick' if args.quick else 'full'}")
    log(info)
    if "train" in sections:
        run_section("train", lambda: section_train(cfg, device_t, work))
    if "saliency" in sections:
        run_section("saliency", lambda: section_saliency(cfg, device_t))
    work_dir.cleanup()
    text = f"{info}; whole run {time.perf_counter() - t_all:.0f}s\n\n{table()}\n"
    (OUT / "results.md").write_text(text)
    print("\n" + text, flush=True)


if __name__ == "__main__":
    main()
