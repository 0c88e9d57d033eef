"""The model builder: every preset keeps the layers it was trained with (same names, types and
settings as the two builders it replaced, recorded in tests/data/preset_layers.json), so saved
models and new ones agree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from concept_saliency.presets import LAYOUTS, PRESETS

RECORDED = json.loads((Path(__file__).parent / "data" / "preset_layers.json").read_text())
SHAPES = {"paper-celeba": (128, 128, 3), "celeba-64": (64, 64, 3), "celeba-32": (32, 32, 3),
          "paper-mob": (32, 32, 1), "demo-shapes": (32, 32, 3)}
KEYS = ("filters", "kernel_size", "strides", "padding", "units", "activation", "axis")


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_builds_the_layers_it_was_trained_with(name):
    from concept_saliency.model import build_vae

    vae = build_vae(PRESETS[name], SHAPES[name], seed=0)
    for part, model in (("encoder", vae.encoder), ("decoder", vae.decoder)):
        built = [[layer.name, type(layer).__name__,
                  {k: v for k, v in layer.get_config().items() if k in KEYS}] for layer in model.layers]
        assert json.loads(json.dumps(built)) == RECORDED[name][part], (name, part)


def test_the_presets_cover_both_layouts_and_the_light_module_imports_no_keras():
    import subprocess
    import sys

    assert {p.layout for p in PRESETS.values()} == set(LAYOUTS)
    code = "import sys, concept_saliency.presets, concept_saliency.config; print('keras' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).parents[1] / "src")
    assert done.stdout.strip() == "False"
