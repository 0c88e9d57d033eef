"""The evaluation of saliency methods: deletion/insertion curves, model randomisation, the table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers import REPO, tiny_encoder

from concept_saliency.evaluation import (
    RANKING_RULE,
    curve_auc,
    evaluation_table,
    randomisation_check,
    score_curves,
    spearman_rows,
    weighted_layers,
)
from concept_saliency.saliency import attribute


def test_spearman_rows_is_spearmans_rho_per_row(rng):
    from scipy.stats import spearmanr

    a, b = rng.normal(size=(4, 30)), rng.normal(size=(4, 30))
    b[1] = a[1] * 3 + 1  # a monotone copy
    b[2, :10] = b[2, 10:20]  # ties
    rho = spearman_rows(a, b)
    for i in range(4):
        assert rho[i] == pytest.approx(spearmanr(a[i], b[i]).statistic)
    assert rho[1] == pytest.approx(1.0)
    assert spearman_rows(a[:1], np.zeros((1, 30)))[0] == 0.0  # a constant map: no correlation


def linear_scores(w):
    """Concept scores of a linear model s(x) = w . x, one row of w per concept."""
    return lambda x, k: np.einsum("nf,nf->n", x.reshape(len(x), -1), w[np.asarray(k)])


def test_deletion_and_insertion_follow_the_map_exactly_on_a_linear_model(rng):
    """For s(x) = w . x the normalised score after deleting the top-k features is known."""
    w = rng.normal(1.0, 1.0, size=(2, 6 * 6))  # scores far from zero: well normalised
    x = rng.uniform(0.5, 1.0, size=(3, 6, 6, 1))
    k = np.array([0, 1, 1])
    contributions = x.reshape(3, -1) * w[k]  # the exact attribution of a linear score
    maps = contributions.reshape(x.shape)
    c = score_curves(linear_scores(w), x, maps, k, steps=4, fill=0.0)
    assert c["fractions"].tolist() == [0, 0.25, 0.5, 0.75, 1]
    for i in range(3):
        order = np.argsort(-contributions[i])
        total = contributions[i].sum()
        for j, count in enumerate([0, 9, 18, 27, 36]):
            removed = contributions[i, order[:count]].sum()
            assert c["deletion"][i, j] == pytest.approx((total - removed) / total)
            assert c["insertion"][i, j] == pytest.approx(removed / total)
    # the exact attribution beats a random order and its reverse beats nothing
    auc = lambda m: curve_auc(c["fractions"], score_curves(linear_scores(w), x, m, k, 4)["deletion"])  # noqa: E731
    random = rng.random(maps.shape)
    assert (auc(maps) < auc(random)).all() and (auc(random) < auc(-maps)).all()


def test_curves_touch_only_the_given_features(rng):
    w = np.ones((1, 16))
    x = np.ones((1, 4, 4, 1))
    features = np.zeros((4, 4), bool)
    features[1:3, 1:3] = True  # four spots; the other grid pixels are not features
    c = score_curves(linear_scores(w), x, rng.normal(size=x.shape), [0], steps=4, fill=0.0,
                     features=features)
    # s(x) = 16, s(filled) = 12 (only the 4 spots are ever filled): one spot per step
    np.testing.assert_allclose(c["deletion"][0], [1, 0.75, 0.5, 0.25, 0])


def test_samples_whose_score_barely_moves_when_filled_are_left_out_of_the_curves(rng):
    """s(x) - s(filled) under min_span of the larger score: NaN rows, not a magnified ratio."""
    w = np.ones((1, 16))
    x = np.ones((3, 4, 4, 1))
    x[1] *= 0.01  # scores 16, 0.16 and 16 against 0 when filled: all move enough
    fill = np.array([0.0, 0.0, 0.97])  # the third: 16 vs 15.52 filled, a 3% move
    curves = [score_curves(linear_scores(w), x[i:i + 1], rng.normal(size=(1, 4, 4, 1)), [0], steps=4,
                           fill=f) for i, f in enumerate(fill)]
    assert np.isfinite(curves[0]["deletion"]).all() and np.isfinite(curves[1]["deletion"]).all()
    assert np.isnan(curves[2]["deletion"]).all() and np.isnan(curves[2]["insertion"]).all()
    kept = score_curves(linear_scores(w), x[2:], rng.normal(size=(1, 4, 4, 1)), [0], steps=4, fill=0.97,
                        min_span=0.01)
    np.testing.assert_allclose(kept["deletion"][0], [1, 0.75, 0.5, 0.25, 0], atol=1e-12)


def test_randomisation_check_passes_the_gradient_and_fails_a_model_blind_method(rng):
    import keras

    from concept_saliency.model import latent_model

    model = latent_model(tiny_encoder(seed=21))
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    before = [w.copy() for w in model.get_weights()]
    x = rng.normal(size=(4, 8, 8, 2)).astype(np.float32)
    c = rng.normal(size=3).astype(np.float32)
    explain = {
        "vanilla_gradient": lambda x: attribute(copy, c, x, "vanilla_gradient"),
        "edge_detector": lambda x: np.abs(np.diff(x, axis=1, prepend=0)),  # ignores the model
    }
    table = randomisation_check(copy, explain, x, seed=1)
    layers = [layer.name for layer in weighted_layers(model)]
    assert layers[0] == "z_mean" and layers[-1] == model.layers[1].name  # from the top down
    assert len(layers) == 5  # 2 conv, 1 batch norm, 2 dense on the path to z_mean
    grad = table[table["method"] == "vanilla_gradient"].set_index("step")["spearman"]
    blind = table[table["method"] == "edge_detector"].set_index("step")["spearman"]
    assert list(grad.index) == list(range(len(layers) + 1)) and grad[0] == 1.0
    assert grad.iloc[-1] < 0.5 and (blind == 1.0).all()
    verdict = evaluation_table(
        {m: {"fractions": np.linspace(0, 1, 3), "deletion": np.zeros((1, 3)), "insertion": np.ones((1, 3))}
         for m in explain}, table, threshold=0.5).set_index("method")
    assert verdict.loc["vanilla_gradient", "randomisation_check"] == "pass"
    assert verdict.loc["edge_detector", "randomisation_check"] == "FAIL"
    # the check destroyed the copy, not the model
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert any(not np.allclose(a, b) for a, b in zip(before, copy.get_weights()))


def test_evaluation_table_puts_every_metric_side_by_side():
    f = np.linspace(0, 1, 3)
    curves = {"good": {"fractions": f, "deletion": np.array([[1, 0, 0]]), "insertion": np.array([[0, 1, 1]])},
              "random": {"fractions": f, "deletion": np.array([[1, 0.5, 0]]),
                         "insertion": np.array([[0, 0.5, 1]])}}
    located = pd.DataFrame({"method": ["good", "random"], "concept": ["c", "c"], "region": ["r", "r"],
                            "own": [1, 1], "auroc": [0.3, 0.5], "auroc_abs": [0.9, 0.5],
                            "mass_ratio": [3.0, 1.0], "peak_in_region": [0.8, 0.1]})
    table = evaluation_table(curves, localisation=located).set_index("method")
    assert table.loc["good", "deletion_auc"] == pytest.approx(0.25)
    assert table.loc["good", "insertion_auc"] == pytest.approx(0.75)
    assert table.loc["random", "deletion_auc"] == pytest.approx(0.5)
    assert table.loc["good", "localisation_auroc"] == 0.9 and table.loc["good", "mass_ratio"] == 3.0
    assert table.loc["good", "rank"] == 1 and pd.isna(table.loc["random", "rank"])
    # images are ranked by where the magnitude lies (a pixel's sign follows the image's
    # contrast); a tissue's spots (tables with a region rank) by the signed map
    tissue = located.assign(rank=[1, 1])
    assert evaluation_table(curves, localisation=tissue).set_index("method").loc["good", "localisation_auroc"] == 0.3


def test_the_ranking_puts_methods_failing_the_randomisation_check_last_then_combines_ranks():
    from concept_saliency.evaluation import rank_methods

    table = pd.DataFrame({
        "method": ["a", "b", "c", "d", "random"],
        "faithfulness": [0.9, 0.5, 0.7, 1.5, 0.0],      # d is the most faithful, but fails the check
        "localisation_auroc": [0.6, 0.95, 0.8, 0.99, 0.5],
        "randomisation_check": ["pass", "pass", "pass", "FAIL", None]})
    ranked = rank_methods(table).set_index("method")
    # ranks among the passing a-c (faithfulness a c b, localisation b c a): a, b and c tie at a
    # mean of 2, so the more faithful first: a, c, b; then d, which failed
    assert list(ranked["rank"].dropna().sort_values().index) == ["a", "c", "b", "d"]
    assert ranked.loc["a", "recommended"] and not ranked.loc["d", "recommended"]
    without = rank_methods(table.drop(columns="localisation_auroc")).set_index("method")
    assert list(without["rank"].dropna().sort_values().index) == ["a", "c", "b", "d"]
    # localisation counts: with c localising better (ranks c b a) c leads, which faithfulness
    # alone (a c b) would not give
    better = table.assign(localisation_auroc=[0.6, 0.95, 0.97, 0.99, 0.5])
    assert list(rank_methods(better).set_index("method")["rank"].dropna().sort_values().index) == \
        ["c", "a", "b", "d"]
    table.loc[1, "faithfulness"] = 0.95  # b now leads faithfulness and localisation
    assert rank_methods(table).set_index("method").loc["b", "rank"] == 1
    # a failing method does not change the order of the others: f localises between q and p,
    # which counted among all methods would give q a mean rank of 1.5 against p's 2
    trio = pd.DataFrame({"method": ["p", "q", "f"], "faithfulness": [1.0, 0.8, 0.5],
                         "localisation_auroc": [0.8, 0.9, 0.85],
                         "randomisation_check": ["pass", "pass", "FAIL"]})
    # p and q tie among themselves (1.5 each): the more faithful p first, with f or without
    assert rank_methods(trio).set_index("method")["rank"].to_dict() == {"p": 1, "q": 2, "f": 3}
    assert rank_methods(trio[trio["method"] != "f"]).set_index("method")["rank"].to_dict() == {"p": 1, "q": 2}


def test_the_report_states_the_ranking_rule_the_code_applies():
    caption = " ".join((REPO / "workflow/report/evaluation.rst").read_text().split())
    assert RANKING_RULE in caption
