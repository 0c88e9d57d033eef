"""Bad configuration: each mistake stops the run with one line naming the key and what to do.

The config is checked the way the Snakefile checks it before any job runs
(``validate_config`` then ``concept_names``); checks that need the data (genes, the
architecture against the image size, method options) are made by the stage that owns them.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml

from concept_saliency.config import concept_names, validate_config
from concept_saliency.errors import ConfigError

from helpers import user_error

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
DEMO = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def check(config: dict) -> None:
    """What the Snakefile does with a config before it plans any job."""
    validate_config(config, SCHEMA)
    for name, dataset in config["datasets"].items():
        concept_names(name, dataset)


def demo(**changes) -> dict:
    config = copy.deepcopy(DEMO)
    for dotted, value in changes.items():
        *parents, last = dotted.split("/")
        node = config
        for p in parents:
            node = node.setdefault(p, {})
        if value is DELETE:
            node.pop(last)
        else:
            node[last] = value
    return config


DELETE = object()


def test_the_demo_config_itself_is_accepted():
    check(demo())


BAD_CONFIGS = {
    # unknown keys, at the top and deep down (a typo must not be silently ignored)
    "unknown top-level key": (demo(colour="red"), ["(top level)", "'colour'", "allowed here"]),
    "unknown dataset key": (demo(**{"datasets/shapes/modles": {}}),
                            ["datasets.shapes", "'modles'", "models"]),
    "unknown model key": (demo(**{"datasets/shapes/models/demo/epoch": 3}),
                          ["datasets.shapes.models.demo", "'epoch'", "epochs"]),
    # wrong types
    "epochs as text": (demo(**{"datasets/shapes/models/demo/epochs": "ten"}),
                       ["datasets.shapes.models.demo.epochs", "'ten'", "integer"]),
    "image_size as a list": (demo(**{"datasets/shapes/image_size": [32, 32]}),
                             ["datasets.shapes.image_size", "integer"]),
    "attributes as a number": (demo(**{"datasets/shapes/concepts/attributes": 3}),
                               ["datasets.shapes.concepts.attributes"]),
    "epochs true": (demo(**{"datasets/shapes/models/demo/epochs": True}),
                    ["datasets.shapes.models.demo.epochs", "integer"]),
    # saliency methods and their options
    "unknown saliency method": (demo(**{"saliency/methods/magic_gradient": {}}),
                                ["saliency.methods", "'magic_gradient'", "vanilla_gradient"]),
    "unknown saliency option": (demo(**{"saliency/methods/smoothgrad": {"sample": 4}}),
                                ["saliency.methods.smoothgrad", "'sample'", "samples"]),
    "option for a method without options": (demo(**{"saliency/methods/vanilla_gradient": {"steps": 4}}),
                                            ["saliency.methods.vanilla_gradient", "'steps'"]),
    "bad option value": (demo(**{"saliency/methods/integrated_gradients": {"baseline": "ones"}}),
                         ["saliency.methods.integrated_gradients.baseline"]),
    # zero and negative counts
    "zero epochs": (demo(**{"datasets/shapes/models/demo/epochs": 0}),
                    ["datasets.shapes.models.demo.epochs", "0 is less than the minimum of 1"]),
    "negative epochs": (demo(**{"datasets/tissue/models/demo/epochs": -5}),
                        ["datasets.tissue.models.demo.epochs", "-5"]),
    "zero batch size": (demo(**{"datasets/shapes/models/demo/batch_size": 0}),
                        ["datasets.shapes.models.demo.batch_size", "minimum of 1"]),
    "zero samples": (demo(**{"datasets/shapes/source/synthetic_shapes": {"n_samples": 0}}),
                     ["datasets.shapes.source.synthetic_shapes.n_samples", "minimum"]),
    "negative num_samples": (demo(**{"datasets/shapes/concepts/num_samples": -1}),
                             ["datasets.shapes.concepts.num_samples", "minimum"]),
    "zero IG steps": (demo(**{"saliency/methods/integrated_gradients": {"steps": 0}}),
                      ["saliency.methods.integrated_gradients.steps", "minimum"]),
    "zero n_genes": (demo(**{"datasets/tissue/concepts/n_genes": 0}),
                     ["datasets.tissue.concepts.n_genes", "minimum"]),
    "zero chunk size": (demo(**{"saliency/chunk_size": 0}), ["saliency.chunk_size", "minimum"]),
    "zero threads": (demo(threads={"train": 0}), ["threads.train", "minimum"]),
    "negative validation fraction": (demo(**{"datasets/shapes/validation_fraction": -0.1}),
                                     ["datasets.shapes.validation_fraction"]),
    "image size too small": (demo(**{"datasets/shapes/image_size": 4}),
                             ["datasets.shapes.image_size", "minimum of 8"]),
    "image size the preset cannot halve": (demo(**{"datasets/shapes/image_size": 36}),
                                           ["datasets.shapes.image_size", "'demo-shapes'",
                                            "multiples of 8", "36x36"]),
    # attributes
    "unknown attribute": (demo(**{"datasets/shapes/concepts/attributes": ["red_square", "Smilling"]}),
                          ["datasets.shapes.concepts.attributes", "Smilling", "the data has"]),
    # a model that is neither a preset nor a file
    "unknown preset": (demo(**{"datasets/shapes/models/demo/preset": "resnet"}),
                       ["datasets.shapes.models.demo.preset", "'resnet'"]),
    "no preset and no keras_file": (demo(**{"datasets/shapes/models/demo/preset": DELETE}),
                                    ["datasets.shapes.models.demo", "'preset'", "'keras_file'"]),
    "missing keras file": (demo(**{"datasets/shapes/models/demo/preset": DELETE,
                                   "datasets/shapes/models/demo/keras_file": "/nowhere/enc.keras"}),
                           ["datasets.shapes.models.demo.keras_file", "/nowhere/enc.keras"]),
    "two sources": (demo(**{"datasets/shapes/source/synthetic_tissue": {}}),
                    ["datasets.shapes.source"]),
    "wrong source for the type": (demo(**{"datasets/shapes/source": {"st_counts": {"counts": "x.tsv"}}}),
                                  ["datasets.shapes.source", "st_counts"]),
    "unknown backend": (demo(backend="pytorch"), ["backend", "'pytorch'", "'tensorflow'"]),
    "no datasets": (demo(datasets={}), ["datasets"]),
    # numbers that are not finite (YAML's .inf and .nan) anywhere a number is taken: NaN passes
    # every minimum and maximum of the schema, infinity gives all-zero maps
    "noise_level .inf": (demo(**{"saliency/methods/smoothgrad": {"noise_level": float("inf")}}),
                         ["saliency.methods.smoothgrad.noise_level", "not a finite number"]),
    "epsilon .inf": (demo(**{"saliency/methods/epsilon_lrp": {"epsilon": float("inf")}}),
                     ["saliency.methods.epsilon_lrp.epsilon", "not a finite number"]),
    "validation_fraction .nan": (demo(**{"datasets/shapes/validation_fraction": float("nan")}),
                                 ["datasets.shapes.validation_fraction", "not a finite number"]),
    "learning_rate -.inf": (demo(**{"datasets/shapes/models/demo/learning_rate": float("-inf")}),
                            ["datasets.shapes.models.demo.learning_rate", "not a finite number"]),
    "fill_value .nan": (demo(evaluation={"fill_value": float("nan")}),
                        ["evaluation.fill_value", "not a finite number"]),
    "baseline .inf": (demo(**{"saliency/methods/deeplift": {"baseline": float("inf")}}),
                      ["saliency.methods.deeplift.baseline", "not a finite number"]),
    # integers out of the range their users take (NumPy seeds are below 2**32)
    "seed 2**32": (demo(seed=4294967296), ["'seed'", "maximum of 4294967295"]),
    "smoothgrad seed 2**32": (demo(**{"saliency/methods/smoothgrad": {"seed": 2 ** 32}}),
                              ["saliency.methods.smoothgrad.seed", "maximum"]),
    # YAML 1.1 reads 1e-3 (no dot) as text: say so
    "learning_rate 1e-3 as text": (demo(**{"datasets/shapes/models/demo/learning_rate": "1e-3"}),
                                   ["datasets.shapes.models.demo.learning_rate", "1.0e-3"]),
    # the results folder
    "results empty": (demo(results=""), ["'results'", "empty"]),
    "results blank": (demo(results="  "), ["'results'", "empty"]),
    "results at the root": (demo(results="/"), ["'results'", "filesystem root"]),
    "results with an unset variable": (demo(results="$CSM_NO_SUCH_VARIABLE/out"),
                                       ["'results'", "$CSM_NO_SUCH_VARIABLE", "not set"]),
    # keys of the other dataset type would be silently ignored
    "seed genes on an image dataset": (demo(**{"datasets/shapes/concepts/seed_genes": {"x": "Penk"}}),
                                       ["datasets.shapes.concepts.seed_genes", "images dataset"]),
    "gene sets on an image dataset": (demo(**{"datasets/shapes/concepts/gene_sets": {"x": ["Penk"]}}),
                                      ["datasets.shapes.concepts.gene_sets"]),
    "n_genes on an image dataset": (demo(**{"datasets/shapes/concepts/n_genes": 10}),
                                    ["datasets.shapes.concepts.n_genes"]),
    "attributes on a spatial dataset": (demo(**{"datasets/tissue/concepts/attributes": "all"}),
                                        ["datasets.tissue.concepts.attributes", "spatial dataset"]),
    "adjust_for on a spatial dataset": (demo(**{"datasets/tissue/concepts/adjust_for": ["layer1"]}),
                                        ["datasets.tissue.concepts.adjust_for", "spatial dataset"]),
    "adjust_for an unknown attribute": (demo(**{"datasets/shapes/concepts/adjust_for": ["stripes", "Male"]}),
                                        ["datasets.shapes.concepts.adjust_for", "unknown attribute(s) Male",
                                         "red_square"]),
    "image_size on a spatial dataset": (demo(**{"datasets/tissue/image_size": 32}),
                                        ["datasets.tissue.image_size", "images datasets only"]),
    "grid_size on an image dataset": (demo(**{"datasets/shapes/grid_size": 32}),
                                      ["datasets.shapes.grid_size", "spatial datasets only"]),
    "summary rank beyond the explained": (demo(**{"datasets/shapes/explain": {"top_k": 2, "summary_rank": 3}}),
                                          ["datasets.shapes.explain.summary_rank", "more than", "top_k"]),
    "localisation without known regions": (
        demo(**{"datasets/tissue/source": {"st_counts": {"counts": "c.tsv"}},
                "datasets/tissue/localisation": {"enabled": True}}),
        ["datasets.tissue.localisation.enabled", "annotation"]),
    "the renamed groundtruth key": (demo(**{"datasets/shapes/groundtruth": True}),
                                    ["datasets.shapes.groundtruth", "renamed", "localisation"]),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_config_gives_one_line_naming_the_key(case):
    config, parts = BAD_CONFIGS[case]
    with user_error(*parts, error=ConfigError) as refusal:
        check(config=config)
    message = refusal.message
    assert message.startswith("config key '"), message


def test_home_and_variables_in_paths_are_expanded(monkeypatch):
    """``results: ~/x`` made a folder literally named '~'; every path key is expanded."""
    monkeypatch.setenv("CSM_DATA", "/data/lab")
    config = demo(results="~/csm-results", **{
        "datasets/tissue/source": {"st_counts": {"counts": "$CSM_DATA/counts.tsv",
                                                 "annotation": "${CSM_DATA}/regions.tsv",
                                                 "image": {"url": "~/he.jpg", "checksum": "md5:00"}}}})
    check(config)
    home = str(Path.home())
    assert config["results"] == f"{home}/csm-results"
    source = config["datasets"]["tissue"]["source"]["st_counts"]
    assert source["counts"] == "/data/lab/counts.tsv"
    assert source["annotation"] == "/data/lab/regions.tsv"
    assert source["image"]["url"] == f"{home}/he.jpg"


@pytest.mark.parametrize("text, parts", [
    ("results: a\nseed: 1\nseed: 2\n", ["line 3", "'seed'", "twice", "line 2"]),
    ("datasets:\n  a:\n    type: images\n    type: spatial\n", ["line 4", "'type'", "twice"]),
    ("saliency:\n  methods:\n    smoothgrad: {samples: 8, samples: 16}\n", ["line 3", "'samples'"]),
    ("seed: 010\n", ["line 1", "010", "base 8"]),
    ("evaluation:\n  curve_steps: 1:30\n", ["line 2", "1:30", "base 60"]),
    ('{"seed": 1, "seed": 2}', ["'seed'", "twice"]),
])
def test_a_config_file_with_a_key_twice_or_a_surprising_number_is_refused(tmp_path, text, parts):
    from concept_saliency.config import check_config_files

    path = tmp_path / "my.yaml"
    path.write_text(text)
    with user_error(str(path), *parts, error=ConfigError):
        check_config_files(paths=[path])


def test_the_shipped_config_files_are_read_strictly_without_complaint():
    from concept_saliency.config import check_config_files

    check_config_files(sorted((REPO / "config").glob("*.yaml")))


def test_an_unknown_gene_names_the_key_the_gene_and_close_names(tmp_path):
    from concept_saliency.genes import GeneIndex

    genes = GeneIndex(["Penk", "Doc2g", "Kctd12", "Cdhr1"], "results/mob/data/samples.h5")
    with user_error(
            "config key 'datasets.mob.concepts.seed_genes.penk'", "Pnek", "results/mob/data/samples.h5",
            "close names", error=ConfigError) as refusal:
        genes.find(names=["Pnek"], what="config key 'datasets.mob.concepts.seed_genes.penk'")
    message = refusal.message
    assert "Penk" in message


def test_a_saliency_option_out_of_range_is_refused_by_the_method():
    from concept_saliency.saliency import get_method

    cls = get_method("smoothgrad")
    with user_error("smoothgrad", "'samples'", error=ConfigError):
        cls.validate_options(options={"samples": 0})
    with user_error("smoothgrad", "unknown option", "noise_level", error=ConfigError):
        cls.validate_options(options={"noise": 0.1})
    with user_error("saliency method", "magic", "vanilla_gradient", error=ConfigError):
        get_method(name="magic")


@pytest.mark.parametrize("size", [20, 36])
def test_an_image_size_the_architecture_cannot_take(size):
    from concept_saliency.model import build_vae, get_preset

    arch = get_preset("celeba-32")  # four stride-2 convolutions: a multiple of 16
    with user_error("celeba-32", "multiples of 16", f"{size}x{size}", "image size", error=ConfigError):
        build_vae(preset=arch, input_shape=(size, size, 3))


def test_zero_epochs_given_to_training_directly_is_refused(tmp_path):
    from concept_saliency.data.samples import assign_split, write_samples
    from concept_saliency.model import get_preset
    from concept_saliency.training import train_vae

    store = tmp_path / "samples.h5"
    write_samples(store, np.zeros((8, 16, 16, 1), np.float32), [f"s{i}" for i in range(8)],
                  assign_split(8, 0.25, 0))
    for epochs, batch in ((0, 4), (-1, 4), (2, 0)):
        with user_error("must be at least 1", error=ConfigError):
            train_vae(
                samples_path=store, preset=get_preset("demo-shapes"), epochs=epochs, batch_size=batch,
                seed=0, checkpoint_dir=tmp_path / "ckpt")
    assert not (tmp_path / "ckpt").exists()
