"""Concept vectors, scores, AUROC and seed-gene groups on hand-made latents."""

import numpy as np
import pytest

from concept_saliency import concept_vectors as C
from concept_saliency.errors import ConfigError


def test_attribute_vector_is_mean_of_positives_minus_mean_of_negatives():
    z = np.array([[1.0, 0.0], [3.0, 2.0], [0.0, 1.0], [0.0, 3.0], [2.0, 2.0]])
    positive = np.array([True, True, False, False, False])
    vector, info = C.attribute_vector(z, positive)
    np.testing.assert_allclose(vector, [2.0 - 2 / 3, 1.0 - 2.0])
    assert info == {"n_positive": 2, "n_negative": 3}


def test_attribute_vector_subsamples_and_refuses_too_few():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(100, 4))
    positive = np.arange(100) < 10
    with pytest.raises(ConfigError, match="concept 'Bald'.*10 positives and 90 negatives"):
        C.attribute_vector(z, positive, num_samples=20, name="Bald")
    vector, info = C.attribute_vector(z, positive, num_samples=20, name="Bald", allow_fewer=True)
    assert info == {"n_positive": 10, "n_negative": 20}
    assert vector.shape == (4,)


def planted_nuisance(n: int, rng: np.random.Generator):
    """Latents where dimension 0 carries the attribute with little within-class spread and
    dimension 1 differs more between the classes on average but varies far more within them
    (a nuisance such as pose that goes with the attribute)."""
    positive = rng.random(n) < 0.5
    z = np.c_[positive * 1.0 + rng.normal(0, 0.3, n), positive * 2.0 + rng.normal(0, 4.0, n),
              rng.normal(0, 1.0, (n, 2))]
    return z, positive


def test_discriminant_is_whitened_difference_and_shrinks_to_the_mean_difference():
    z, positive = planted_nuisance(400, np.random.default_rng(3))
    a, b = z[positive], z[~positive]
    d = a.mean(0) - b.mean(0)
    pooled = (np.cov(a, rowvar=False) * (len(a) - 1) + np.cov(b, rowvar=False) * (len(b) - 1)) / (len(z) - 2)
    lda = np.linalg.solve(pooled, d)  # textbook LDA, computed independently
    w = C.discriminant_direction(a, b, shrinkage=0.0)
    np.testing.assert_allclose(w, lda * np.linalg.norm(d) / np.linalg.norm(lda), rtol=1e-9)
    half = C.discriminant_direction(a, b, shrinkage=0.5)
    target = 0.5 * pooled + 0.5 * np.trace(pooled) / 4 * np.eye(4)
    expected = np.linalg.solve(target, d)
    np.testing.assert_allclose(half, expected * np.linalg.norm(d) / np.linalg.norm(expected), rtol=1e-9)
    np.testing.assert_allclose(C.discriminant_direction(a, b, shrinkage=1.0), d, rtol=1e-9)
    vector, info = C.attribute_vector(z, positive, direction="discriminant", shrinkage=1.0)
    np.testing.assert_allclose(vector, C.attribute_vector(z, positive)[0], rtol=1e-5)
    assert info == {"n_positive": int(positive.sum()), "n_negative": int((~positive).sum())}


def test_discriminant_separates_held_out_samples_better_when_a_nuisance_goes_with_the_concept():
    rng = np.random.default_rng(4)
    z, positive = planted_nuisance(600, rng)
    test_z, test_positive = planted_nuisance(600, rng)
    mean_vec, _ = C.attribute_vector(z, positive)
    half_vec, _ = C.attribute_vector(z, positive, direction="discriminant")  # shrinkage 0.5
    lda_vec, _ = C.attribute_vector(z, positive, direction="discriminant", shrinkage=0.0)
    auroc_mean, auroc_half, auroc_lda = (C.auroc(test_z @ v, test_positive) for v in (mean_vec, half_vec, lda_vec))
    assert auroc_mean < 0.7 < auroc_half < 0.8 < 0.95 < auroc_lda
    # the mean difference points mostly along the nuisance, the discriminant along the concept
    assert abs(mean_vec[1]) > 2 * abs(mean_vec[0])
    assert abs(half_vec[0]) > 2 * abs(half_vec[1]) and abs(lda_vec[0]) > 50 * abs(lda_vec[1])
    for v in (half_vec, lda_vec):
        assert np.isclose(np.linalg.norm(v), np.linalg.norm(mean_vec), rtol=1e-5)


def test_discriminant_refuses_bad_options():
    z = np.arange(8.0).reshape(4, 2)
    with pytest.raises(ConfigError, match="'direction' must be one of mean_difference, discriminant"):
        C.attribute_vector(z, np.array([1, 1, 0, 0], bool), direction="lda")
    with pytest.raises(ConfigError, match="'shrinkage' must lie in \\[0, 1\\], got 2"):
        C.discriminant_direction(z[:2], z[2:], shrinkage=2)
    with pytest.raises(ConfigError, match="concept 'Bald': direction 'discriminant' needs at least 3 "
                                          "samples.*1 with and 1 without"):
        C.attribute_vector(z[:2], np.array([1, 0], bool), name="Bald", direction="discriminant")
    with pytest.raises(ConfigError, match="'direction' must be one of"):
        C.concept_from_group(z, [0, 1], subtract_rest=True, direction="fisher")


def planted_confounder(n: int, rng: np.random.Generator):
    """Latents where dimension 0 carries the concept and dimension 1 a covariate (sex, say)
    that goes with the concept (80% of the concept's samples have it, 20% of the others) but
    is not the concept; dimensions 2-3 are noise."""
    covariate = rng.random(n) < 0.5
    positive = rng.random(n) < np.where(covariate, 0.8, 0.2)
    z = np.c_[positive * 1.0 + rng.normal(0, 0.5, n), covariate * 3.0 + rng.normal(0, 0.5, n),
              rng.normal(0, 1.0, (n, 2))]
    return z, positive, covariate


def test_adjusted_direction_holds_a_confounder_fixed():
    rng = np.random.default_rng(6)
    z, positive, covariate = planted_confounder(2000, rng)
    plain, _ = C.attribute_vector(z, positive)
    adjusted, info = C.attribute_vector(z, positive, covariates=covariate[:, None], covariate_names=["Male"])
    assert info == {"n_positive": int(positive.sum()), "n_negative": int((~positive).sum())}
    # the mean difference picks up the covariate's dimension (3 x 0.6 = 1.8); held fixed, it is gone
    assert plain[1] > 1.5 and abs(adjusted[1]) < 0.1 and adjusted[0] == pytest.approx(1.0, abs=0.1)
    # Frisch-Waugh-Lovell, computed independently: the concept and the latents with the
    # intercept and covariate regressed out, then the slope of one on the other
    base = np.c_[np.ones(len(z)), covariate]
    hat = base @ np.linalg.pinv(base)
    ry, rz = positive - hat @ positive, z - hat @ z
    np.testing.assert_allclose(adjusted, ry @ rz / (ry @ ry), rtol=1e-5)
    # the discriminant with a covariate: whitened by the fit's residual covariance
    design = np.c_[np.ones(len(z)), positive, covariate]
    residual = z - design @ np.linalg.lstsq(design, z, rcond=None)[0]
    within = residual.T @ residual / (len(z) - 3)
    target = 0.5 * within + 0.5 * np.trace(within) / 4 * np.eye(4)
    expected = np.linalg.solve(target, adjusted)
    disc, _ = C.attribute_vector(z, positive, direction="discriminant", covariates=covariate)
    np.testing.assert_allclose(disc, expected * np.linalg.norm(adjusted) / np.linalg.norm(expected), rtol=1e-4)
    # no covariates: exactly the mean difference and the discriminant
    none = np.empty((len(z), 0))
    np.testing.assert_allclose(C.adjusted_direction(z, positive, none), plain, rtol=1e-6)
    np.testing.assert_allclose(C.adjusted_direction(z, positive, none, "discriminant", 0.3),
                               C.discriminant_direction(z[positive], z[~positive], 0.3), rtol=1e-9)
    # on held-out samples of the same kind, the adjusted score follows the concept within each
    # level of the covariate, where the plain one is carried by it
    tz, tpos, tcov = planted_confounder(2000, rng)
    for level in (False, True):
        keep = tcov == level
        assert C.auroc(tz[keep] @ adjusted, tpos[keep]) > C.auroc(tz[keep] @ plain, tpos[keep]) + 0.05


def test_adjusted_concepts_skip_their_own_attribute_and_refuse_what_cannot_be_told_apart():
    z, positive, covariate = planted_confounder(400, np.random.default_rng(7))
    labels = np.c_[positive, covariate].astype(np.int8)
    fit_on = np.ones(len(z), bool)
    found = C.attribute_concepts(z, labels, ["Smiling", "Male"], "all", fit_on, adjust_for=("Male",))
    np.testing.assert_allclose(found[0].vector, C.attribute_vector(z, positive, covariates=covariate)[0],
                               rtol=1e-6)
    np.testing.assert_allclose(found[1].vector, C.attribute_vector(z, covariate)[0], rtol=1e-6)  # itself: skipped
    np.testing.assert_allclose(C.concept_from_labels(z, positive, adjust_for=covariate), found[0].vector,
                               rtol=1e-6)
    with pytest.raises(ConfigError, match="concepts.adjust_for: no attribute 'Hat' in samples.h5"):
        C.attribute_concepts(z, labels, ["Smiling", "Male"], "all", fit_on, where="samples.h5",
                             adjust_for=("Male", "Hat"))
    same = np.c_[positive, positive].astype(np.int8)  # a second name for the same labels
    with pytest.raises(ConfigError, match="concept 'Smiling': among the 400 samples.*fixed by the "
                                          "'adjust_for' attributes \\(Grin\\)"):
        C.attribute_concepts(z, same, ["Smiling", "Grin"], ["Smiling"], fit_on, adjust_for=("Grin",))
    with pytest.raises(ConfigError, match="concept 'Bald': too few samples \\(3\\)"):
        C.adjusted_direction(z[:3], np.array([1, 0, 1], bool), np.array([0, 1, 1]), name="Bald")


def test_auroc_matches_pairwise_definition_with_ties():
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 5, size=60).astype(float)  # many ties
    labels = rng.random(60) < 0.4
    pos, neg = scores[labels], scores[~labels]
    pairwise = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (
        len(pos) * len(neg))
    assert C.auroc(scores, labels) == pytest.approx(pairwise)
    assert C.auroc(np.arange(4.0), np.array([0, 0, 1, 1], bool)) == 1.0
    assert C.auroc(np.arange(4.0), np.array([1, 1, 0, 0], bool)) == 0.0
    assert np.isnan(C.auroc(np.arange(3.0), np.zeros(3, bool)))


def test_scores_are_dot_products_and_separate_a_planted_concept():
    rng = np.random.default_rng(2)
    direction = np.array([0.0, 1.0, 0.0])
    labels = rng.random(400) < 0.5
    z = rng.normal(size=(400, 3)) + 2.0 * labels[:, None] * direction
    vector, _ = C.attribute_vector(z[:200], labels[:200])
    s = C.concept_scores(z, vector[None])[:, 0]
    np.testing.assert_allclose(s, z @ vector, rtol=1e-6)
    assert C.auroc(s[200:], labels[200:]) > 0.85


def test_correlated_with_ranks_by_pearson_over_latent_dimensions():
    rng = np.random.default_rng(3)
    seed = rng.normal(size=10)
    z = np.stack([seed, 2 * seed + 1, -seed, rng.normal(size=10), seed + 0.3 * rng.normal(size=10)])
    idx, r, p = C.correlated_with(z, 0, 3)
    assert list(idx[:2]) in ([0, 1], [1, 0])
    assert idx[2] == 4
    np.testing.assert_allclose(r[:2], 1.0)
    np.testing.assert_allclose(r[2], np.corrcoef(z[0], z[4])[0, 1])
    assert p[2] < 0.01


def test_group_vector_and_top_selection():
    z = np.array([[1.0, 1.0], [3.0, 1.0], [5.0, 5.0]])
    members = np.array([True, True, False])
    np.testing.assert_allclose(C.group_vector(z, members), [2.0, 1.0])
    np.testing.assert_allclose(C.group_vector(z, members, subtract_rest=True), [-3.0, -4.0])
    scores = np.array([0.1, 0.9, 0.5, 0.7])
    assert list(C.select_top(scores, np.array([True, False, True, True]), 2)) == [3, 2]


def test_discriminant_applies_to_contrastive_gene_concepts_only():
    from concept_saliency.genes import GeneIndex

    z, member = planted_nuisance(300, np.random.default_rng(5))
    genes = GeneIndex([f"Gene{k}" for k in range(len(z))])
    names = [f"Gene{k}" for k in np.nonzero(member)[0]]
    spec = {"gene_sets": {"contrast": {"genes": names, "subtract_rest": True}, "plain": names},
            "direction": "discriminant", "shrinkage": 0.25}
    found, _ = C.gene_concepts(spec, z, genes)
    by_name = {c.name: c.vector for c in found}
    np.testing.assert_allclose(by_name["contrast"], C.discriminant_direction(z[member], z[~member], 0.25),
                               rtol=1e-5)
    np.testing.assert_allclose(by_name["plain"], z[member].mean(0), rtol=1e-5)  # no second group
    found, _ = C.gene_concepts({**spec, "direction": "mean_difference"}, z, genes)
    np.testing.assert_allclose(found[0].vector, z[member].mean(0) - z[~member].mean(0), rtol=1e-5)


def test_concepts_artifact_round_trip(tmp_path):
    cs = [C.Concept("a", "attribute", np.ones(3, np.float32), np.array([1, 0], bool)),
          C.Concept("b", "gene_set", np.zeros(3, np.float32), np.array([0, 1], bool))]
    C.write_concepts(tmp_path / "c.h5", cs, np.arange(4.0).reshape(2, 2),
                     {"a": np.array([0]), "b": np.array([1, 0])}, ["s1", "s2"])
    back = C.read_concepts(tmp_path / "c.h5")
    assert back.names == ["a", "b"] and back.kinds == ["attribute", "gene_set"]
    assert back.ids == ["s1", "s2"]
    np.testing.assert_array_equal(back.explain["b"], [1, 0])
    np.testing.assert_array_equal(back.vectors[0], np.ones(3))


def test_gene_index_is_case_sensitive_and_suggests_the_right_spelling():
    from concept_saliency.genes import GeneIndex

    genes = GeneIndex(["Penk", "X2010300C02Rik", "H2.Ke6", "h", "H"], "the test data")
    assert list(genes.find(["Penk", "2010300C02Rik", "H2-Ke6", "h", "H"])) == [0, 1, 2, 3, 4]
    with pytest.raises(ConfigError) as info:
        genes.find(["PENK", "penk2", "h2-ke6"], "concept 'c'")
    message = str(info.value)
    assert message.startswith("concept 'c': gene(s) not found among the 5 genes of the test data: ")
    assert "'PENK' (did you mean 'Penk'?)" in message and "'h2-ke6' (did you mean 'H2.Ke6'?)" in message
    assert "'penk2' (close names: Penk)" in message and "case-sensitive" in message


def test_gene_index_refuses_a_gene_listed_twice_in_any_spelling():
    from concept_saliency.genes import GeneIndex

    genes = GeneIndex(["Penk", "X2010300C02Rik"])
    with pytest.raises(ConfigError, match=r"gene 'X2010300C02Rik' is listed twice \('2010300C02Rik' and "
                                          r"'X2010300C02Rik'\), items 2 and 3; list every gene once"):
        genes.find(["Penk", "2010300C02Rik", "X2010300C02Rik"], "concept 'c'")
    with pytest.raises(ConfigError, match=r"gene 'Penk' is listed twice, items 1 and 2"):
        genes.find(["Penk", "Penk"])


def test_gene_index_names_at_most_five_unknown_genes():
    from concept_saliency.genes import GeneIndex

    with pytest.raises(ConfigError) as info:
        GeneIndex([f"Gene{k}" for k in range(3)]).find([f"Nope{k}" for k in range(9)])
    message = str(info.value)
    assert "'Nope4'" in message and "'Nope5'" not in message and "and 4 more" in message


def _three_region_tissue(rng):
    """60 spots in three regions (a, b, c) and 40 genes: genes 0-4 high in a, 5-9 in b, 10-14 in c."""
    import anndata as ad
    import pandas as pd

    region = np.repeat(["a", "b", "c"], 20)
    x = rng.poisson(2.0, size=(60, 40)).astype(np.float32)
    for k, name in enumerate("abc"):
        x[np.ix_(region == name, np.arange(5 * k, 5 * k + 5))] += 20
    obs = pd.DataFrame({"region": pd.Categorical(region)}, index=[f"s{i}" for i in range(60)])
    adata = ad.AnnData(x, obs=obs, var=pd.DataFrame(index=[f"Gene{g}" for g in range(40)]))
    adata.layers["counts"] = x
    return adata


def test_region_concepts_contrasted_with_the_other_regions(rng):
    from concept_saliency.genes import GeneIndex

    adata = _three_region_tissue(rng)
    genes = GeneIndex(list(adata.var_names))
    z = rng.normal(size=(40, 6))
    group = {name: np.isin(np.arange(40), np.arange(5 * k, 5 * k + 5)) for k, name in enumerate("abc")}
    spec = {"regions": {name: name for name in "abc"}, "n_markers": 5}

    def vectors(**options):
        found, _ = C.gene_concepts(spec | options, z, genes, adata)
        assert [c.name for c in found] == ["a", "b", "c"]
        for c in found:  # the planted markers
            np.testing.assert_array_equal(c.positives, group[c.name])
        return {c.name: c.vector for c in found}

    mean = {name: z[m].mean(0) for name, m in group.items()}
    rest = {name: z[~m].mean(0) for name, m in group.items()}
    np.testing.assert_allclose(vectors()["a"], mean["a"], rtol=1e-5)
    np.testing.assert_allclose(vectors(subtract_rest=True)["a"], mean["a"] - rest["a"], rtol=1e-5)
    # each other region weighs alike: b and c, not the 35 genes outside a
    others = vectors(subtract_regions=True)
    for name in "abc":
        expected = mean[name] - np.mean([mean[o] for o in "abc" if o != name], axis=0)
        np.testing.assert_allclose(others[name], expected, rtol=1e-5, atol=1e-6)
    both = vectors(subtract_regions=True, subtract_rest=True)
    np.testing.assert_allclose(both["b"], 0.5 * (others["b"] + mean["b"] - rest["b"]), rtol=1e-5, atol=1e-6)
    # per region: only c contrasted, against a and b
    found, _ = C.gene_concepts(spec | {"regions": {"a": "a", "b": "b", "c": {"region": "c", "subtract_regions": True}}},
                               z, genes, adata)
    np.testing.assert_allclose(found[0].vector, mean["a"], rtol=1e-5)
    np.testing.assert_allclose(found[2].vector, others["c"], rtol=1e-5, atol=1e-6)

    with pytest.raises(ConfigError, match=r"concept 'a': 'subtract_regions' needs another region concept "
                                          r"of the annotation 'region'"):
        C.gene_concepts({"regions": {"a": "a"}, "n_markers": 5, "subtract_regions": True}, z, genes, adata)
    with pytest.raises(ConfigError, match=r"concept 'a': 'subtract_regions' takes the mean difference"):
        C.gene_concepts(spec | {"subtract_regions": True, "subtract_rest": True, "direction": "discriminant"},
                        z, genes, adata)
