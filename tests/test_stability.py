"""Stability across retraining: one model trained with several seeds, its maps and scores compared."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from concept_saliency.stability import consensus_map, map_agreement, score_agreement


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


def test_the_consensus_weighs_every_seed_alike_whatever_its_scale(rng):
    a, b = rng.normal(size=50), rng.normal(size=50)
    # a seed whose maps are 100 times larger does not outvote the other
    np.testing.assert_allclose(consensus_map([a, 100 * b]),
                               (a / np.abs(a).mean() + b / np.abs(b).mean()) / 2, rtol=1e-12)
    np.testing.assert_allclose(consensus_map([3 * a, a, 0.5 * a]), a / np.abs(a).mean(), rtol=1e-12)
    # what the seeds agree on stays, what one seed alone shows is diluted
    shared = np.r_[np.ones(5), np.zeros(45)]
    seeds = [shared + 0.2 * rng.normal(size=50) for _ in range(3)]
    seeds[1][30] = 2.0  # one seed's own peak, twice the shared signal
    mean = consensus_map(seeds)
    assert mean[:5].min() > mean[30] and np.argmax(seeds[1]) == 30
    np.testing.assert_array_equal(consensus_map([np.zeros(4), np.ones(4)]), np.full(4, 0.5))
    with pytest.raises(ValueError, match="at least two seeds"):
        consensus_map([a])


def test_the_seeds_concepts_must_be_the_same_concepts_of_the_same_samples(tmp_path):
    from concept_saliency import concept_vectors as C
    from concept_saliency.errors import ArtifactError
    from concept_saliency.stability import read_seed_concepts

    def write(name, concepts, ids):
        cs = [C.Concept(c, "attribute", np.ones(3, np.float32), np.array([1, 0], bool)) for c in concepts]
        C.write_concepts(tmp_path / name, cs, np.zeros((2, len(cs))), {c: np.array([0]) for c in concepts}, ids)
        return str(tmp_path / name)

    same = [write("s0.h5", ["a", "b"], ["x", "y"]), write("s1.h5", ["a", "b"], ["x", "y"])]
    assert [cs.names for cs in read_seed_concepts(same)] == [["a", "b"], ["a", "b"]]
    for other in (write("names.h5", ["a", "c"], ["x", "y"]), write("ids.h5", ["a", "b"], ["x", "z"])):
        with pytest.raises(ArtifactError, match=f"{other} and {same[0]} do not hold the same concepts"):
            read_seed_concepts([same[0], other])


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



def _seed_summary(faith, randomised, localisation, recommended):
    """One seed's evaluation/summary.tsv of methods a, b, c (and the random map)."""
    rows = [{"method": m, "deletion_auc": -f / 2, "insertion_auc": f / 2, "faithfulness": f,
             "localisation_auroc": loc, "randomised_spearman": r,
             "randomisation_check": "pass" if r < 0.5 else "FAIL", "recommended": m == recommended}
            for m, f, r, loc in zip("abc", faith, randomised, localisation)]
    rows.append({"method": "random", "deletion_auc": 0.5, "insertion_auc": 0.5, "faithfulness": 0.0,
                 "localisation_auroc": 0.5})
    return pd.DataFrame(rows)


def test_the_methods_of_a_model_with_seeds_are_ranked_once_with_their_stability(tmp_path):
    from concept_saliency.errors import ArtifactError
    from concept_saliency.evaluation import rank_methods
    from concept_saliency.stability import rank_across_seeds
    from concept_saliency.stages.seed_ranking import seed_ranking

    # c is the most faithful and best localised, but fails the randomisation check in two of
    # three trainings (the third recommends it); a is stable across the seeds, b is not
    summaries = [_seed_summary([1.0, 1.2, 2.0], [0.1, 0.2, 0.60], [0.9, 0.7, 0.95], "b"),
                 _seed_summary([1.1, 1.3, 2.1], [0.1, 0.2, 0.55], [0.9, 0.7, 0.95], "b"),
                 _seed_summary([0.9, 1.1, 1.9], [0.1, 0.2, 0.45], [0.9, 0.7, 0.95], "c")]
    stability = pd.DataFrame({"concept": ["x", "y"] * 3, "method": ["a", "a", "b", "b", "c", "c"],
                              "map_spearman": [0.7, 0.9, 0.2, 0.4, 0.9, 0.9],
                              "stable": [True, True, False, False, True, True]})
    ranked = rank_across_seeds(summaries, stability).set_index("method")
    assert list(ranked.index) == ["a", "b", "c"] and (ranked["n_seeds"] == 3).all()
    assert ranked.loc["a", "faithfulness"] == pytest.approx(1.0)
    assert ranked.loc["a", "faithfulness_min"] == pytest.approx(0.9)
    assert ranked.loc["c", "randomised_spearman"] == pytest.approx(1.6 / 3)
    assert ranked.loc["c", "randomisation_check"] == "FAIL" and ranked.loc["c", "randomisation_failed_seeds"] == 2
    assert ranked.loc["a", "stability"] == pytest.approx(0.8) and ranked.loc["b", "stable_share"] == 0
    assert ranked["recommended_by_seeds"].to_dict() == {"a": 0, "b": 2, "c": 1}
    # c fails and comes last; between a and b faithfulness ranks b, a; localisation and
    # stability a, b: a first
    assert ranked["rank"].to_dict() == {"a": 1, "b": 2, "c": 3} and ranked["recommended"].to_dict() == {
        "a": True, "b": False, "c": False}
    # without the stability the two tie (mean rank 1.5) and the more faithful b comes first
    assert rank_methods(ranked.drop(columns="stability").reset_index()).set_index("method")["recommended"]["b"]
    with pytest.raises(ValueError, match="at least two seeds"):
        rank_across_seeds(summaries[:1], stability)
    with pytest.raises(ValueError, match="same methods"):
        rank_across_seeds([summaries[0], summaries[1][summaries[1]["method"] != "b"]], stability)
    # the stage: the tables as the workflow writes them, and a seed that scored other methods refused
    paths = []
    for i, s in enumerate(summaries):
        paths.append(str(tmp_path / f"seed{i}.tsv"))
        s.to_csv(paths[-1], sep="\t", index=False)
    stability.to_csv(tmp_path / "stability.tsv", sep="\t", index=False)
    facts = seed_ranking(summaries=paths, stability=str(tmp_path / "stability.tsv"),
                         table=str(tmp_path / "ranking.tsv"))
    assert facts["ranking"] == ["a", "b", "c"] and "stability" in facts["ranking_rule"]
    written = pd.read_csv(tmp_path / "ranking.tsv", sep="\t").set_index("method")
    pd.testing.assert_frame_equal(written[["faithfulness", "stability"]], ranked[["faithfulness", "stability"]])
    summaries[2][summaries[2]["method"] != "a"].to_csv(paths[2], sep="\t", index=False)
    with pytest.raises(ArtifactError, match=f"{paths[2]} and {paths[0]} do not score the same methods"):
        seed_ranking(summaries=paths, stability=str(tmp_path / "stability.tsv"),
                     table=str(tmp_path / "other.tsv"))
    assert not (tmp_path / "other.tsv").exists()


@pytest.mark.workflow
def test_a_model_with_two_seeds_trains_both_and_reports_their_agreement(tmp_path):
    from workflow_run import copy_workflow, planned_jobs, snakemake

    work = copy_workflow(tmp_path / "wf")
    config = {
        "results": "results", "seed": 0,
        "saliency": {"methods": {"vanilla_gradient": {}, "integrated_gradients": {"steps": 8}}},
        "evaluation": {"randomisation_samples": 2, "curve_steps": 4, "stability_samples": 3},
        "threads": {"train": 1, "saliency": 1},  # the two seeds' jobs side by side on 2 cores
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
    assert jobs["seed_ranking"] == 1 and jobs["evaluate"] == 2, jobs
    # the stability report, the ranking over the seeds and what they need
    targets = [f"results/shapes/tiny/stability/{f}" for f in ("stability.tsv", "stability.png", "ranking.tsv")]
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
    # the methods ranked once, from both seeds' evaluations and the maps' stability
    ranking = pd.read_csv(res / "tiny" / "stability" / "ranking.tsv", sep="\t").set_index("method")
    seeds = [pd.read_csv(res / f"tiny-seed{s}" / "evaluation" / "summary.tsv", sep="\t").set_index("method")
             for s in (0, 1)]
    assert sorted(ranking.index) == ["integrated_gradients", "vanilla_gradient"]
    for method, row in ranking.iterrows():
        assert row["faithfulness"] == pytest.approx((seeds[0].loc[method, "faithfulness"]
                                                     + seeds[1].loc[method, "faithfulness"]) / 2, rel=1e-5)
        assert row["stability"] == pytest.approx(table.loc[table["method"] == method, "map_spearman"].mean(),
                                                 rel=1e-5)
    assert sorted(ranking["rank"]) == [1, 2] and ranking["recommended"].sum() == 1
    assert planned_jobs(work, *targets, "--configfile", "config/seeds.yaml") == {}


@pytest.mark.workflow
def test_a_tissue_model_with_seeds_gets_its_concept_maps_averaged_drawn_and_scored(tmp_path):
    import anndata as ad

    from concept_saliency.data.grid import read_grid
    from concept_saliency.data.spatial import map_key
    from concept_saliency.localisation import score_against_regions
    from workflow_run import copy_workflow, planned_jobs, snakemake

    work = copy_workflow(tmp_path / "wf")
    methods = ["vanilla_gradient", "guided_backprop"]
    config = {
        "results": "results", "seed": 0,
        "saliency": {"methods": {m: {} for m in methods}},
        "evaluation": {"randomisation_samples": 2, "curve_steps": 4, "stability_samples": 2},
        "threads": {"train": 1, "saliency": 1},  # the two seeds' jobs side by side on 2 cores
        "datasets": {"tissue": {
            "type": "spatial",
            "source": {"synthetic_tissue": {"n_layers": 3, "genes_per_layer": 30, "n_housekeeping": 20,
                                            "n_noise": 60}},
            "normalisation": {"method": "scale", "min_spots": 3},
            "models": {"demo": {"preset": "paper-mob", "epochs": 8, "batch_size": 32, "seeds": [0, 1]}},
            "concepts": {"seed_genes": {"layer1": "Layer1g001", "layer2": "Layer2g001"}, "n_genes": 15,
                         "regions": {"layer3_markers": "layer3"}},
            "explain": {"top_k": 3},
        }},
    }
    (work / "config" / "seeds.yaml").write_text(yaml.safe_dump(config))
    jobs = planned_jobs(work, "--configfile", "config/seeds.yaml")
    assert jobs["train"] == 2 and jobs["consensus"] == 1 and jobs["stability"] == 1, jobs
    targets = [f"results/tissue/demo/stability/{f}" for f in ("consensus_maps.h5ad", "consensus.tsv",
                                                                "consensus.png")]
    targets += [f"results/tissue/demo-seed{s}/maps.h5ad" for s in (0, 1)]
    res = work / "results" / "tissue"
    stab = res / "demo" / "stability"
    snakemake(work, *targets, "--cores", "2", "--configfile", "config/seeds.yaml", timeout=900)
    consensus = ad.read_h5ad(stab / "consensus_maps.h5ad")
    assert consensus.uns["csm_format"] == "csm.consensus-maps"
    assert list(consensus.uns["csm_consensus"]["runs"]) == ["demo-seed0", "demo-seed1"]
    seeds = [ad.read_h5ad(res / f"demo-seed{s}" / "maps.h5ad") for s in (0, 1)]
    assert all(list(s.obs_names) == list(consensus.obs_names) for s in seeds)
    _, regions = read_grid(res / "data" / "grid.h5")
    table = pd.read_csv(stab / "consensus.tsv", sep="\t").set_index(["concept", "method"])
    assert len(table) == 3 * len(methods) and (table["n_seeds"] == 2).all()
    for (concept, method), row in table.iterrows():
        key = map_key(concept, method)
        # the average of what each seed's spatial_maps stage drew, each seed weighing alike
        per_seed = [np.asarray(s.obs[key], dtype=np.float64) for s in seeds]
        expected = sum(m / np.abs(m).mean() for m in per_seed) / 2
        np.testing.assert_allclose(consensus.obs[key], expected, rtol=1e-5, atol=1e-6)
        scored = score_against_regions(expected, regions).set_index("region")
        own = {"layer1": "layer1", "layer2": "layer2", "layer3_markers": "layer3"}[concept]
        assert row["own_region"] == own and row["own_auroc"] == pytest.approx(scored.loc[own, "auroc"], abs=1e-4)
        seed_aurocs = [score_against_regions(m, regions).set_index("region").loc[own, "auroc"] for m in per_seed]
        assert row["own_auroc_seed_min"] == pytest.approx(min(seed_aurocs), abs=1e-4)
        assert row["own_auroc_seed_max"] == pytest.approx(max(seed_aurocs), abs=1e-4)
        assert row["first_region"] == scored["auroc"].idxmax() and -1 <= row["seed_spearman"] <= 1
    assert set(table["own_rank"]) <= {1, 2, 3}
    assert (stab / "consensus.png").stat().st_size > 10_000
    assert planned_jobs(work, *targets, "--configfile", "config/seeds.yaml") == {}
