"""What the tests share: where things are, a small real Keras encoder, running a stage as the
workflow does, and the fault suite's checks (one-line user errors, nothing partial left)."""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from concept_saliency.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def shared_data() -> Path:
    """The shared real data (CSM_TEST_DATA, default ../shared/data beside the checkout)."""
    return Path(os.environ.get("CSM_TEST_DATA", REPO.parent / "shared" / "data"))


def tiny_encoder(activation="relu", seed=0, fused=False, latent=3, shape=(8, 8, 2), bias=True):
    """A small conv encoder with batch norm (non-trivial statistics) and two latent heads."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inp = keras.Input(shape)
    if fused:
        h = layers.Conv2D(4, 3, strides=2, padding="same", activation=activation, use_bias=bias)(inp)
    else:
        h = layers.Conv2D(4, 3, strides=2, padding="same", use_bias=bias)(inp)
        h = layers.BatchNormalization()(h)
        h = layers.Activation(activation)(h)
    h = layers.Conv2D(5, 3, strides=1, padding="same", use_bias=bias)(h)
    h = layers.ReLU()(h) if activation == "relu" else layers.Activation(activation)(h)
    h = layers.Flatten()(h)
    h = layers.Dense(6, activation=activation, use_bias=bias)(h)
    z = layers.Dense(latent, name="z_mean", use_bias=bias)(h)
    logvar = layers.Dense(latent, name="z_log_var")(h)
    model = keras.Model(inp, [z, logvar], name="tiny_encoder")
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.3, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, layer.moving_variance.shape))
            layer.gamma.assign(rng.uniform(0.5, 1.5, layer.gamma.shape))
            layer.beta.assign(rng.normal(0, 0.2, layer.beta.shape))
    return model


def run_stage(name: str, outputs: tuple[str, ...], **kwargs) -> dict:
    """Stage ``name`` run as the workflow runs it (provenance records included): the keyword
    arguments named in ``outputs`` are its outputs, existing paths its inputs, the rest params."""
    from concept_saliency.stages import run_stage as run

    outs = {k: kwargs.pop(k) for k in outputs}
    inputs = {k: v for k, v in kwargs.items()
              if isinstance(v, (str, Path)) and Path(v).exists()
              or isinstance(v, list) and v and all(isinstance(p, (str, Path)) and Path(p).exists() for p in v)}
    params = {k: v for k, v in kwargs.items() if k not in inputs}
    return run(name, inputs=inputs, outputs=outs, params=params)


# ---------------------------------------------------------------- training callbacks


def _callback_base():
    import keras

    return keras.callbacks.Callback


class InterruptAfter(_callback_base()):
    """An interruption (Ctrl-C) at the end of epoch ``n``, after its checkpoint is written."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.n:
            raise KeyboardInterrupt


class EpochsSeen(_callback_base()):
    """Records the epochs (1-based) a training run starts."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_epoch_begin(self, epoch, logs=None):
        self.seen.append(epoch + 1)


# ---------------------------------------------------------------- the fault suite's checks


@dataclass
class Refusal:
    """What :func:`user_error` caught: the exception and its message."""

    error: BaseException | None = None

    @property
    def message(self) -> str:
        return str(self.error)


@contextlib.contextmanager
def user_error(*must_contain: str, error: type[BaseException] = UserError):
    """The block must raise ``error`` with one clear line holding every ``must_contain`` (a file
    name, a key, a line number, what to do)::

        with user_error("f3.png", "cannot read the image", error=InputDataError) as refusal:
            prepare_images(**kwargs)
        assert "..." in refusal.message
    """
    refusal = Refusal()
    with pytest.raises(error) as info:
        yield refusal
    refusal.error = info.value
    message = refusal.message
    assert "\n" not in message.strip(), f"not one line: {message!r}"
    assert "Traceback" not in message
    assert len(message) < 600, f"too long for one clear line: {message!r}"
    for part in must_contain:
        assert part.lower() in message.lower(), f"{part!r} not in {message!r}"


#: What needs no provenance record: logs, Snakemake's per-job benchmark tables, the training
#: checkpoint (resumable on purpose); and a download's .part may stay (resumed by the next run).
_NO_PROVENANCE_NEEDED = re.compile(r"(^|/)(logs|benchmarks|checkpoint)/|\.log$")
_PARTIAL = re.compile(r"\.tmp[-.]|\.tmp$|\.part$|\.partial$|\.incomplete$")


def assert_no_partial_artifacts(root: Path, allow_part: bool = False) -> None:
    """Nothing under ``root`` is a partial write, and every artifact has its provenance record.

    A file beside which no ``.prov.json`` lies is an unversioned artifact: either a stage
    wrote it without finishing (its record is written last) or it was never versioned.
    """
    root = Path(root)
    if not root.exists():
        return
    problems = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if ".snakemake" in path.parts or path.is_dir():
            continue
        if _PARTIAL.search(path.name):
            if not (allow_part and path.name.endswith(".part")):
                problems.append(f"partial file left: {rel}")
            continue
        if path.name.endswith(".prov.json") or _NO_PROVENANCE_NEEDED.search(rel):
            continue
        # a file inside a directory artifact (e.g. raw/images/) is covered by the directory's record
        versioned = [p for p in (path, *path.parents) if p != root and root in p.parents
                     and p.with_name(p.name + ".prov.json").exists()]
        if not versioned:
            problems.append(f"unversioned artifact (no {path.name}.prov.json): {rel}")
    assert not problems, "\n".join(problems)


def first_line_error(text: str) -> list[str]:
    """Lines of a stage's stderr/log that report an error (``ERROR`` log records)."""
    return [line for line in text.splitlines() if " ERROR " in line]


def edit_line(path: Path, lineno: int, fn) -> Path:
    """Replace line ``lineno`` (1-based) of a text file by ``fn(line)``; returns the path."""
    lines = path.read_text().splitlines()
    lines[lineno - 1] = fn(lines[lineno - 1])
    path.write_text("\n".join(lines) + "\n")
    return path
