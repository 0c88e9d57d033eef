"""The workflow end to end: the built-in demo through Snakemake, in a temporary copy.

One module-scoped run of the default config (the demo as `make demo` runs it),
then checks of its artifacts, the report, the ground truth, and which jobs
Snakemake would rerun after a change.
"""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest
import yaml

from workflow_run import copy_workflow, planned_jobs, snakemake

from concept_saliency.evaluation import RANKING_RULE

pytestmark = pytest.mark.workflow


def test_demo_writes_every_artifact_with_provenance(demo):
    results = demo / "results"
    for ds, concepts in (("shapes", ["red_square", "blue_disc", "stripes", "yellow_triangle"]),
                         ("tissue", ["layer1", "layer2", "layer3", "layer4", "layer3_markers"])):
        base = results / ds / "demo"
        expected = {
            base / "model" / "vae.keras": "csm.keras-model",
            base / "model" / "encoder.keras": "csm.keras-model",
            base / "model" / "history.csv": "csm.history",
            base / "latents.h5": "csm.latents",
            base / "concepts" / "concepts.h5": "csm.concepts",
            base / "concepts" / "separation.tsv": "csm.table",
            results / ds / "data" / "samples.h5": "csm.samples",
            **{base / "saliency" / f"{m}.h5": "csm.saliency"
               for m in ("vanilla_gradient", "gradient_x_input", "smoothgrad",
                         "integrated_gradients", "guided_backprop", "rectgrad", "deeplift")},
            **{base / "evaluation" / f"{n}.tsv": "csm.table" for n in ("summary", "randomisation", "curves")},
            base / "evaluation" / "evaluation.png": "csm.figure",
            **{base / "figures" / f"{c}.png": "csm.figure" for c in concepts},
            **({base / "maps.h5ad": "csm.spatial-maps"} if ds == "tissue" else {}),
        }
        for path, fmt in expected.items():
            assert path.is_file() and path.stat().st_size > 0, path
            record = json.loads(path.with_name(path.name + ".prov.json").read_text())
            assert record["format"] == fmt and record["format_version"] == 1, path
            assert record["package"]["version"] and record["libraries"]["keras"]
            assert record["duration_s"] >= 0 and record["inputs"] is not None
        # no temporary or partial files are left behind
        leftovers = [p for p in results.rglob("*") if ".tmp-" in p.name]
        assert leftovers == []
    train = json.loads((results / "shapes/demo/model/encoder.keras.prov.json").read_text())
    assert train["parameters"]["epochs"] == 10 and train["device"].startswith("tensorflow")
    assert train["inputs"]["samples"]["checksum"].startswith("sha256:")
    assert not (results / "shapes/demo/model/checkpoint").exists()


def test_demo_maps_and_latents_have_the_right_shapes(demo):
    import h5py

    with h5py.File(demo / "results/shapes/demo/saliency/integrated_gradients.h5") as f:
        assert f.attrs["format"] == "csm.saliency" and f.attrs["method"] == "integrated_gradients"
        assert f["red_square/maps"].shape == (4, 32, 32, 3)
    with h5py.File(demo / "results/tissue/demo/saliency/vanilla_gradient.h5") as f:
        assert f["layer2/maps"].shape == (3, 32, 32, 1)
    with h5py.File(demo / "results/shapes/demo/latents.h5") as f:
        assert f["z"].shape == (2000, 16)


def test_concepts_separate_on_held_out_samples(demo):
    shapes = pd.read_csv(demo / "results/shapes/demo/concepts/separation.tsv", sep="\t")
    assert (shapes["evaluated_on"] == "held-out").all()
    assert (shapes["auroc"] > 0.8).all(), shapes
    tissue = pd.read_csv(demo / "results/tissue/demo/concepts/separation.tsv", sep="\t")
    assert (tissue["auroc"] > 0.9).all(), tissue
    groups = pd.read_csv(demo / "results/tissue/demo/concepts/groups.tsv", sep="\t")
    # the genes most correlated with a layer's seed gene belong to that layer
    for layer in range(1, 5):
        genes = groups.loc[groups["concept"] == f"layer{layer}", "gene"]
        assert genes.str.startswith(f"Layer{layer}g").mean() > 0.8
    # the marker genes of the annotated layer 3 are layer-3 genes
    markers = groups.loc[groups["concept"] == "layer3_markers", "gene"]
    assert len(markers) == 50 and markers.str.startswith("Layer3g").mean() > 0.9


def test_concept_maps_point_at_the_known_regions_better_than_a_random_map(demo):
    shapes = pd.read_csv(demo / "results/shapes/demo/evaluation/localisation.tsv", sep="\t")
    per_method = shapes.groupby("method")[["auroc_abs", "mass_ratio", "peak_in_region"]].mean()
    assert per_method.loc["random", "auroc_abs"] == pytest.approx(0.5, abs=0.05)
    assert per_method.loc["random", "mass_ratio"] == pytest.approx(1.0, abs=0.1)
    methods = per_method.drop(index="random")
    assert (methods["mass_ratio"] > 2 * per_method.loc["random", "mass_ratio"]).all(), per_method
    assert (methods["auroc_abs"] > 0.8).all(), per_method
    # the tissue: each layer's seed-gene concept points at its own layer, for the exact methods
    tissue = pd.read_csv(demo / "results/tissue/demo/evaluation/localisation.tsv", sep="\t")
    own = tissue[tissue["own"] == 1].set_index(["method", "concept"])
    for method in ("gradient_x_input", "integrated_gradients"):
        rows = own.loc[method]
        assert (rows["auroc_abs"] > 0.75).mean() >= 0.75, rows  # |map|
        assert rows["auroc_abs"].mean() > 0.75, rows  # as before: the mean over the concepts
        assert rows["auroc_abs"].mean() > own.loc["random", "auroc_abs"].mean() + 0.2, rows
        assert (rows["rank"] == 1).mean() >= 0.75, rows  # the signed map ranks its own layer first
    assert set(tissue["region"]) == {"layer1", "layer2", "layer3", "layer4"}


def test_second_run_does_nothing(demo):
    assert planned_jobs(demo) == {}


def test_report_holds_every_figure_with_captions(demo):
    snakemake(demo, "--report", "results/report.html")
    html = (demo / "results/report.html").read_text()
    for name in ("red_square.png", "layer3.png", "loss.png", "histograms.png", "localisation.png",
                 "separation.tsv", "localisation.tsv", "evaluation.png", "summary.tsv"):
        assert name in html, name
    assert '"shapes"' in html and '"tissue"' in html  # categories
    assert "Concept saliency maps for concept" in html  # a rendered caption
    # the ranking rule the evaluate stage applies, in full (the captions are stored with \n)
    assert RANKING_RULE in " ".join(html.replace("\\n", " ").split())
    assert "data:image/png;" in html


def test_changing_a_saliency_option_reruns_only_saliency_and_what_follows(demo, tmp_path):
    config = yaml.safe_load((demo / "config/config.yaml").read_text())
    config["saliency"]["methods"]["integrated_gradients"]["steps"] = 32
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config))
    jobs = planned_jobs(demo, "--configfile", str(changed))
    assert jobs == {"saliency": 2, "spatial_maps": 1, "render": 9, "localise": 2,
                    "evaluate": 2, "all": 1}, jobs


def test_editing_a_library_module_reruns_the_stages_that_use_it(demo):
    module = demo / "src/concept_saliency/concept_vectors.py"
    original = module.read_text()
    try:
        module.write_text(original + "\n# edited\n")
        jobs = planned_jobs(demo)
        assert "train" not in jobs and jobs["concepts"] == 2 and jobs["saliency"] == 14, jobs
    finally:
        module.write_text(original)
        os.utime(module, (0, 0))
    assert planned_jobs(demo) == {}


def test_forcerun_of_one_rule_reruns_it_and_what_follows(demo):
    jobs = planned_jobs(demo, "--forcerun", "encode")
    assert jobs == {"encode": 2, "concepts": 2, "plot_scores": 2, "saliency": 14, "spatial_maps": 1,
                    "render": 9, "localise": 2, "evaluate": 2, "all": 1}, jobs
    assert planned_jobs(demo, "--forcerun", "encode", "--until", "concepts") == {"encode": 2, "concepts": 2}


def test_integrated_gradients_of_the_trained_demo_encoders_are_complete_within_one_percent(demo):
    """Sum of the IG map = s(x) - s(baseline) within 1% at 64 steps, on the real trained models."""
    import h5py
    import numpy as np

    from concept_saliency.concept_vectors import read_concepts
    from concept_saliency.model import latent_model, load_model

    for ds in ("shapes", "tissue"):
        base = demo / "results" / ds / "demo"
        encoder = latent_model(load_model(base / "model/encoder.keras"))
        cs = read_concepts(base / "concepts/concepts.h5")
        errors, deltas = [], []
        with h5py.File(base / "saliency/integrated_gradients.h5") as f:
            assert "steps': 64" in f.attrs["options"]
            for k, name in enumerate(cs.names):
                maps, scores = f[name]["maps"][()], f[name]["scores"][()]
                zero = np.asarray(encoder(np.zeros((1, *maps.shape[1:]), "float32"))) @ cs.vectors[k]
                delta = scores - zero[0]
                errors.append(np.abs(maps.reshape(len(maps), -1).sum(axis=1) - delta))
                deltas.append(np.abs(delta))
        assert np.concatenate(errors).sum() <= 0.01 * np.concatenate(deltas).sum(), ds


def test_asking_for_one_artifact_builds_only_what_it_needs(tmp_path):
    work = copy_workflow(tmp_path / "fresh")
    jobs = planned_jobs(work, "results/tissue/demo/figures/layer2.png")
    # the tissue chain for one concept (its figure draws on maps.h5ad): no shapes job,
    # no other figure, no evaluation
    assert jobs == {"generate_tissue": 1, "prepare_spatial": 1, "train": 1, "encode": 1,
                    "concepts": 1, "saliency": 7, "spatial_maps": 1, "render": 1}, jobs


def test_evaluation_scores_every_method_and_flags_insensitive_ones(demo):
    """One method x metric table per data set; the randomisation check has a verdict per method."""
    for ds in ("shapes", "tissue"):
        table = pd.read_csv(demo / f"results/{ds}/demo/evaluation/summary.tsv", sep="\t").set_index("method")
        methods = ["vanilla_gradient", "gradient_x_input", "smoothgrad", "integrated_gradients",
                   "guided_backprop", "rectgrad", "deeplift"]
        assert list(table.index) == [*methods, "random"]
        assert set(table.loc[methods, "randomisation_check"]) <= {"pass", "FAIL"}
        assert table.loc[methods, ["localisation_auroc", "mass_ratio", "rank"]].notna().all().all()
        assert table["recommended"].sum() == 1 and pd.isna(table.loc["random", "rank"])
        # the exact-attribution methods rank features better than a random order
        for method in ("integrated_gradients", "deeplift"):
            assert table.loc[method, "insertion_auc"] > table.loc["random", "insertion_auc"], ds
        randomisation = pd.read_csv(demo / f"results/{ds}/demo/evaluation/randomisation.tsv", sep="\t")
        assert randomisation.groupby("method")["step"].max().min() >= 5  # every weighted layer
    # the gradient's maps change as the model is destroyed (Adebayo et al.: it passes)
    shapes = pd.read_csv(demo / "results/shapes/demo/evaluation/summary.tsv", sep="\t").set_index("method")
    assert shapes.loc["vanilla_gradient", "randomisation_check"] == "pass"
