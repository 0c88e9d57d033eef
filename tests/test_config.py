"""The config schema: defaults, one clear message per bad value, in step with the library."""

import copy

import pytest
import yaml

from helpers import REPO

from concept_saliency.config import concept_names, validate_config
from concept_saliency.errors import ConfigError

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def demo_config():
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def test_the_demo_config_is_valid_and_gets_defaults():
    config = validate_config(demo_config(), SCHEMA)
    shapes = config["datasets"]["shapes"]
    assert shapes["models"]["demo"]["learning_rate"] is None
    assert shapes["explain"]["ids"] == []
    assert config["threads"] == {"train": 2, "saliency": 2, "crop_pack": 2}
    assert config["datasets"]["tissue"]["normalisation"] == {"method": "scale", "min_spots": 3,
                                                              "min_counts": 1, "duplicate_genes": "refuse"}
    assert config["datasets"]["tissue"]["max_grid"] == 256


@pytest.mark.parametrize("edit,key,message", [
    (lambda c: c.update(epochz=3), "(top level)", "unknown key(s) 'epochz'"),
    (lambda c: c["datasets"]["shapes"]["models"]["demo"].update(epochs=0),
     "datasets.shapes.models.demo.epochs", "less than the minimum of 1"),
    (lambda c: c["datasets"]["shapes"]["models"]["demo"].update(epochs="ten"),
     "datasets.shapes.models.demo.epochs", "'ten' is not of type 'integer'"),
    (lambda c: c["datasets"]["shapes"]["models"]["demo"].update(preset="resnet"),
     "datasets.shapes.models.demo.preset", "'resnet' is not one of"),
    (lambda c: c["saliency"]["methods"].update(occlusionn={}),
     "saliency.methods", "unknown key(s) 'occlusionn'"),
    (lambda c: c["saliency"]["methods"]["integrated_gradients"].update(stepz=3),
     "saliency.methods.integrated_gradients", "unknown key(s) 'stepz'"),
    (lambda c: c["saliency"]["methods"]["integrated_gradients"].update(steps=-1),
     "saliency.methods.integrated_gradients.steps", "less than the minimum of 2"),
    (lambda c: c.update(backend="torch"), "backend", "'torch' is not one of"),
    (lambda c: c["datasets"]["shapes"]["concepts"].update(direction="lda"),
     "datasets.shapes.concepts.direction", "'lda' is not one of"),
    (lambda c: c["datasets"]["shapes"]["concepts"].update(shrinkage=1.5),
     "datasets.shapes.concepts.shrinkage", "greater than the maximum of 1"),
    (lambda c: c["datasets"]["shapes"]["source"].update(image_folder={"images": "x", "labels": "y"}),
     "datasets.shapes.source", "has too many properties"),
])
def test_a_bad_value_gives_one_message_naming_the_key(edit, key, message):
    config = demo_config()
    edit(config)
    with pytest.raises(ConfigError) as info:
        validate_config(config, SCHEMA)
    text = str(info.value)
    assert text.startswith(f"config key '{key}'"), text
    assert message in text
    assert "\n" not in text


def test_a_source_of_the_wrong_type_is_refused():
    config = demo_config()
    config["datasets"]["shapes"]["source"] = {"st_counts": {"counts": "x.tsv"}}
    with pytest.raises(ConfigError, match="'datasets.shapes.source': a images dataset takes "
                                          "synthetic_shapes or image_folder"):
        validate_config(config, SCHEMA)


def test_schema_lists_exactly_the_library_presets_and_methods():
    from concept_saliency.model import PRESETS
    from concept_saliency.saliency import METHODS

    schema = yaml.safe_load(SCHEMA.read_text())
    assert schema["$defs"]["model"]["properties"]["preset"]["enum"] == list(PRESETS)
    methods = schema["$defs"]["saliency"]["properties"]["methods"]["properties"]
    assert set(methods) == set(METHODS)
    for name, cls in METHODS.items():
        spec = methods[name]
        spec = schema["$defs"]["no_options"] if "$ref" in spec else spec
        assert set(spec.get("properties", {})) == set(cls.options), name


def test_concept_names_expand_all_and_check_attributes(tmp_path):
    config = validate_config(demo_config(), SCHEMA)
    assert concept_names("shapes", config["datasets"]["shapes"]) == [
        "red_square", "blue_disc", "stripes", "yellow_triangle"]
    assert concept_names("tissue", config["datasets"]["tissue"]) == [
        "layer1", "layer2", "layer3", "layer4", "layer3_markers"]
    table = tmp_path / "labels.csv"
    table.write_text("image,Smiling,Male\na.png,1,-1\n")
    ds = {"type": "images", "source": {"image_folder": {"images": str(tmp_path), "labels": str(table)}},
          "concepts": {"attributes": ["Smiling", "Hat"]}}
    with pytest.raises(ConfigError, match="unknown attribute.*Hat; the data has Smiling, Male"):
        concept_names("mine", ds)
    ds["concepts"]["attributes"] = "all"
    assert concept_names("mine", copy.deepcopy(ds)) == ["Smiling", "Male"]
