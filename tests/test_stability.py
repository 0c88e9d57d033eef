"""Stability across retraining: one model trained with several seeds, its maps and scores compared."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from concept_saliency.stability import map_agreement, score_agreement


def test_maps_that_agree_disagree_or_flip_sign(rng):
    a = rng.normal(size=(3, 8, 8, 2))
    same = map_agreement([a, a * 2.0 + 0.0])
    assert same["map_spearman"] == pytest.approx(1.0) and same["map_spearman_abs"] == pytest.approx(1.0)
    flipped = map_agreement([a, -a])
    assert flipped["map_spearman"] == pytest.approx(-1.0) and flipped["map_spearman_abs"] == pytest.approx(1.0)
    noise = map_agreement([a, rng.normal(size=a.shape), rng.normal(size=a.shape)])
    assert abs(noise["map_spearman"]) < 0.2 and noise["map_spearman_min"] <= noise["map_spearman"]
    # the lowest pair: of (a, a, -a) the pairs agree 1, -1, -1
    assert map_agreement([a, a, -a])["map_spearman_min"] == pytest.approx(-1.0)
    # only the features (a tissue's spots) count
    features = np.zeros((8, 8), bool)
    features[:2] = True
    b = a.copy()
    b[:, 2:] = rng.normal(size=b[:, 2:].shape)  # everything off the spots changed
    assert map_agreement([a, b], features)["map_spearman"] == pytest.approx(1.0)
    assert score_agreement([np.arange(10.0), np.arange(10.0) ** 3, -np.arange(10.0)]) == pytest.approx(
        (1 - 1 - 1) / 3)
    with pytest.raises(ValueError, match="at least two seeds"):
        map_agreement([a])
    with pytest.raises(ValueError, match="at least two seeds"):
        score_agreement([np.arange(10.0)])


def test_seeds_expand_into_one_model_per_seed():
    from concept_saliency.config import expand_seeds, validate_config
    from concept_saliency.errors import ConfigError
    from helpers import REPO

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["datasets"]["shapes"]["models"]["demo"]["seeds"] = [3, 7]
    validate_config(config, REPO / "workflow/schemas/config.schema.yaml")
    groups = expand_seeds(config)
    assert groups == {"shapes": {"demo": ["demo-seed3", "demo-seed7"]}}
    models = config["datasets"]["shapes"]["models"]
    assert list(models) == ["demo-seed3", "demo-seed7"] and models["demo-seed7"]["seed"] == 7
    assert "seeds" not in models["demo-seed3"] and models["demo-seed3"]["epochs"] == 10
    clash = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    clash["datasets"]["shapes"]["models"]["demo-seed1"] = {"preset": "demo-shapes"}
    clash["datasets"]["shapes"]["models"]["demo"]["seeds"] = [1, 2]
    validate_config(clash, REPO / "workflow/schemas/config.schema.yaml")
    with pytest.raises(ConfigError, match="models.demo.seeds': the model 'demo-seed1' .* is already configured"):
        expand_seeds(clash)


@pytest.mark.workflow
def test_a_model_with_two_seeds_trains_both_and_reports_their_agreement(tmp_path):
    from workflow_run import copy_workflow, planned_jobs, snakemake

    work = copy_workflow(tmp_path / "wf")
    config = {
        "results": "results", "seed": 0,
        "saliency": {"methods": {"vanilla_gradient": {}, "integrated_gradients": {"steps": 8}}},
        "evaluation": {"randomisation_samples": 2, "curve_steps": 4, "stability_samples": 3},
        "datasets": {"shapes": {
            "type": "images",
            "source": {"synthetic_shapes": {"n_samples": 120, "image_size": 16}},
            "image_size": 16,
            "models": {"tiny": {"preset": "demo-shapes", "epochs": 2, "batch_size": 16, "seeds": [0, 1]}},
            "concepts": {"attributes": ["red_square", "stripes"], "num_samples": 20},
            "explain": {"top_k": 3},
        }},
    }
    (work / "config" / "seeds.yaml").write_text(yaml.safe_dump(config))
    jobs = planned_jobs(work, "--configfile", "config/seeds.yaml")
    assert jobs["train"] == 2 and jobs["stability"] == 1 and jobs["saliency"] == 4, jobs
    # the stability report and what it needs (the seeds' figures and evaluations are the usual)
    targets = [f"results/shapes/tiny/stability/stability.{ext}" for ext in ("tsv", "png")]
    snakemake(work, *targets, "--cores", "2", "--configfile", "config/seeds.yaml", timeout=900)
    res = work / "results" / "shapes"
    for run in ("tiny-seed0", "tiny-seed1"):
        record = (res / run / "model" / "encoder.keras.prov.json").read_text()
        assert f'"seed": {run[-1]}' in record
    table = pd.read_csv(res / "tiny" / "stability" / "stability.tsv", sep="\t")
    assert set(table["method"]) == {"vanilla_gradient", "integrated_gradients"}
    assert set(table["concept"]) == {"red_square", "stripes"} and (table["n_samples"] == 3).all()
    assert table[["map_spearman", "score_spearman"]].abs().le(1).all().all()
    assert table["stable"].dtype == bool and (res / "tiny" / "stability" / "stability.png").is_file()
    # two trainings of one model score the concepts alike, even when their maps differ
    assert (table["score_spearman"] > 0.5).all(), table
    assert planned_jobs(work, *targets, "--configfile", "config/seeds.yaml") == {}
