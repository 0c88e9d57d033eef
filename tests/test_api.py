"""The library as a notebook user meets it: ``import concept_saliency as csm``."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from helpers import REPO, tiny_encoder


def test_importing_the_package_imports_no_keras_and_the_verbs_load_on_use():
    code = ("import sys, concept_saliency as csm; assert 'keras' not in sys.modules; "
            "assert callable(csm.plot_attribution) and 'matplotlib.pyplot' not in sys.modules; "
            "assert callable(csm.attribute) and 'keras' in sys.modules; print(sorted(csm.__all__)[:3])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO / "src", check=False)
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_missing_backend_names_the_extra_to_install():
    code = ("import importlib.util as u; real = u.find_spec\n"
            "u.find_spec = lambda n, *a: None if n == 'tensorflow' else real(n, *a)\n"
            "import os; os.environ['KERAS_BACKEND'] = 'tensorflow'\n"
            "import concept_saliency as csm\n"
            "csm.load_model\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO / "src")
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: Keras' backend 'tensorflow' is not installed")
    assert "pip install 'concept-saliency[tensorflow]'" in last and "KERAS_BACKEND=jax" in last


def test_a_notebook_session_from_latents_to_a_figure(rng):
    import concept_saliency as csm

    encoder = tiny_encoder(latent=3)
    x = rng.uniform(0, 1, (12, 8, 8, 2)).astype(np.float32)
    z = csm.latents(encoder, x, batch_size=5)
    np.testing.assert_allclose(z, np.asarray(encoder(x)[0]), rtol=1e-5, atol=1e-6)
    labels = np.arange(12) % 2
    c = csm.concept_from_labels(z, labels)
    np.testing.assert_allclose(c, z[labels == 1].mean(0) - z[labels == 0].mean(0), rtol=1e-5)
    np.testing.assert_allclose(csm.concept_from_group(z, [0, 3]), z[[0, 3]].mean(0), rtol=1e-6)
    maps = csm.attribute(encoder, c, x[:3], method="integrated_gradients", steps=16)
    assert maps.shape == x[:3].shape
    fig = csm.plot_attribution(maps[0], x[0], sign="positive")
    assert fig.axes and fig.axes[0].images  # the input, then the map blended over it
    assert len(fig.axes[0].images) == 2 and fig.axes[0].images[1].get_alpha() == pytest.approx(0.55)


@pytest.mark.parametrize("method, options", [("smoothgrad", {"samples": 3}),
                                             ("integrated_gradients", {"steps": 8}),
                                             ("deeplift", {"baseline": "mean"})])
def test_a_progress_bar_gives_the_same_maps(rng, capsys, method, options):
    """``progress=True`` goes through the samples in blocks of ``chunk_size``: same maps, a bar."""
    import concept_saliency as csm

    encoder = tiny_encoder(latent=3)
    x = rng.uniform(0, 1, (7, 8, 8, 2)).astype(np.float32)
    c = rng.normal(size=(2, 3))
    concept = np.arange(7) % 2
    plain = csm.attribute(encoder, c, x, method, concept=concept, chunk_size=3, **options)
    shown = csm.attribute(encoder, c, x, method, concept=concept, chunk_size=3, progress=True, **options)
    np.testing.assert_allclose(shown, plain, rtol=1e-5, atol=1e-6)
    assert "7/7" in capsys.readouterr().err  # tqdm's bar, on stderr outside a notebook


@pytest.mark.parametrize("given, meant", [("integrated_gradient", "integrated_gradients"),
                                          ("IntegratedGradients", "integrated_gradients"),
                                          ("Vanilla-Gradient", "vanilla_gradient"),
                                          ("rect_grad", "rectgrad"), ("deeplfit", "deeplift")])
def test_a_misspelt_method_says_which_was_meant(given, meant):
    import concept_saliency as csm
    from concept_saliency.errors import ConfigError

    with pytest.raises(ConfigError, match=f"did you mean '{meant}'"):
        csm.get_method(given)
    with pytest.raises(ConfigError) as err:
        csm.get_method("banana")
    assert "did you mean" not in str(err.value) and "vanilla_gradient" in str(err.value)


@pytest.mark.parametrize("sign", ["all", "positive", "negative", "absolute"])
def test_attribution_scaling_keeps_the_sign_asked_for(sign):
    from concept_saliency.plotting import scaled_attribution

    m = np.zeros((4, 4, 1))
    m[0, 0], m[3, 3] = 2.0, -1.0
    values, vmin, vmax, cmap = scaled_attribution(m, sign, clip=(0, 100))
    expected = {"all": m[..., 0], "positive": np.maximum(m[..., 0], 0),
                "negative": np.maximum(-m[..., 0], 0), "absolute": np.abs(m[..., 0])}[sign]
    np.testing.assert_allclose(values, expected)
    assert vmin == (-2.0 if sign == "all" else 0.0) and vmax == (1.0 if sign == "negative" else 2.0)
    assert cmap == {"all": "bwr", "positive": "Reds", "negative": "Blues", "absolute": "Greens"}[sign]
