"""The config schema: defaults, one clear message per bad value, in step with the library."""

import copy

import pytest
import yaml

from helpers import REPO

from concept_saliency.config import concept_names, own_regions, validate_config
from concept_saliency.errors import ConfigError

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def demo_config():
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def test_the_demo_config_is_valid_and_gets_defaults():
    config = validate_config(demo_config(), SCHEMA)
    shapes = config["datasets"]["shapes"]
    assert shapes["models"]["demo"]["learning_rate"] is None
    assert shapes["explain"]["ids"] == []
    assert config["threads"] == {"train": 2, "saliency": 1, "crop_pack": 2}  # saliency given, the rest defaults
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


# ------------------------------------------------------------------ regions: all


def tissue_config(source: dict, regions="all", **concepts) -> dict:
    config = demo_config()
    tissue = config["datasets"]["tissue"]
    tissue["source"] = source
    tissue["concepts"] = ({} if regions is None else {"regions": regions}) | concepts
    return config


def test_region_concept_names_from_any_labels():
    from concept_saliency.config import region_concept_names

    assert region_concept_names(["GCL", "MCL"]) == {"gcl": "GCL", "mcl": "MCL"}
    assert region_concept_names(["1: Granular Cell Layer", "L2/3", "3", " ?"]) == {
        "1_granular_cell_layer": "1: Granular Cell Layer", "l2_3": "L2/3", "3": "3", "region": " ?"}
    # two labels one name, and a name another concept has
    assert region_concept_names(["GCL", "gcl", "Penk"], taken={"penk"}) == {
        "gcl": "GCL", "gcl_2": "gcl", "region_penk": "Penk"}


def test_regions_all_makes_a_concept_of_every_annotated_region(tmp_path):
    # the MOB layers as MERINGUE names them, one layer under 10 spots, R's write.csv header
    layers = {"1: Granular Cell Layer": 12, "2: Mitral Cell Layer": 10, "6: Rostral Migratory Stream": 9}
    rows = [f'"{k}x{n}","{layer}"' for n, (layer, count) in enumerate(layers.items()) for k in range(count)]
    annotation = tmp_path / "layers.csv"
    annotation.write_text('"","layer"\n' + "\n".join(rows) + "\n")
    source = {"st_counts": {"counts": str(tmp_path / "counts.tsv"), "annotation": str(annotation)}}
    config = validate_config(tissue_config(source, seed_genes={"region": "Penk"}), SCHEMA)
    tissue = config["datasets"]["tissue"]
    assert tissue["concepts"]["regions"] == {"1_granular_cell_layer": "1: Granular Cell Layer",
                                             "2_mitral_cell_layer": "2: Mitral Cell Layer"}
    assert concept_names("tissue", tissue) == ["region", "1_granular_cell_layer", "2_mitral_cell_layer"]
    # clusters in their numeric order
    clusters = tmp_path / "clusters.tsv"
    clusters.write_text("".join(f"{k}x{c}\t{c}\n" for c in (10, 2, 1) for k in range(10)))
    source["st_counts"]["annotation"] = str(clusters)
    config = validate_config(tissue_config(source), SCHEMA)
    assert list(config["datasets"]["tissue"]["concepts"]["regions"]) == ["1", "2", "10"]
    # the synthetic tissue: its layers
    config = validate_config(tissue_config({"synthetic_tissue": {"n_layers": 3}}), SCHEMA)
    assert config["datasets"]["tissue"]["concepts"]["regions"] == {f"layer{k}": f"layer{k}" for k in (1, 2, 3)}


def test_regions_all_from_an_h5ad_column_read_before_the_run(tmp_path):
    import anndata as ad
    import numpy as np

    a = ad.AnnData(X=np.ones((30, 2), dtype=np.float32))
    a.obs["domain"] = np.repeat(["cortex", "medulla", "pelvis"], [14, 11, 5])
    a.obs.loc[a.obs_names[:2], "domain"] = None  # unannotated: 12 cortex spots left
    a.write_h5ad(tmp_path / "kidney.h5ad")
    source = {"anndata": {"path": str(tmp_path / "kidney.h5ad"), "region_key": "domain"}}
    config = validate_config(tissue_config(source), SCHEMA)
    assert config["datasets"]["tissue"]["concepts"]["regions"] == {"cortex": "cortex", "medulla": "medulla"}
    source["anndata"]["region_key"] = "layer"
    with pytest.raises(ConfigError, match="kidney.h5ad has no obs column 'layer'"):
        validate_config(tissue_config(source), SCHEMA)


@pytest.mark.parametrize("source, message", [
    ({"st_counts": {"counts": "c.tsv"}}, "this source has no annotation: give the source's annotation"),
    ({"anndata": {"path": "https://example.org/a.h5ad", "region_key": "layer"}},
     "https://example.org/a.h5ad is not a file here; name the regions instead"),
    ({"st_counts": {"counts": "c.tsv", "annotation": "missing.tsv"}}, "missing.tsv: cannot read the spot annotation"),
])
def test_regions_all_without_an_annotation_to_read_says_what_to_do(source, message):
    with pytest.raises(ConfigError, match=f"config key 'datasets.tissue.concepts.regions': .*{message}"):
        validate_config(tissue_config(source), SCHEMA)


def test_region_concepts_come_by_default_with_a_spot_annotation(tmp_path):
    """``regions`` left out: a concept per annotated region of 10 spots or more where the source
    has an annotation this machine can read; none without one; ``none`` makes none."""
    import anndata as ad
    import numpy as np

    annotation = tmp_path / "layers.tsv"
    annotation.write_text("".join(f"{k}x{n}\t{layer}\n" for n, layer in enumerate(["MCL", "GCL"])
                                  for k in range(12)) + "1x9\tRMS\n")
    source = {"st_counts": {"counts": "c.tsv", "annotation": str(annotation)}}
    config = validate_config(tissue_config(source, regions=None, seed_genes={"penk": "Penk"}), SCHEMA)
    tissue = config["datasets"]["tissue"]
    assert tissue["concepts"]["regions"] == {"gcl": "GCL", "mcl": "MCL"}
    assert concept_names("tissue", tissue) == ["penk", "gcl", "mcl"]
    assert own_regions("tissue", tissue) == {"gcl": "GCL", "mcl": "MCL", "penk": "penk"}
    # named regions, and none
    config = validate_config(tissue_config(source, regions={"granule": "GCL"}), SCHEMA)
    assert config["datasets"]["tissue"]["concepts"]["regions"] == {"granule": "GCL"}
    config = validate_config(tissue_config(source, regions="none", seed_genes={"penk": "Penk"}), SCHEMA)
    assert "regions" not in config["datasets"]["tissue"]["concepts"]
    assert concept_names("tissue", config["datasets"]["tissue"]) == ["penk"]
    # a local .h5ad's region_key, by path or file: URL (spaces escaped, as Path.as_uri writes
    # them); one still to download is not read, and gets none
    a = ad.AnnData(X=np.ones((12, 2), dtype=np.float32))
    a.obs["domain"] = ["cortex"] * 10 + ["medulla"] * 2  # medulla: too few spots for a concept
    (tmp_path / "a b").mkdir()
    a.write_h5ad(tmp_path / "a b" / "kidney.h5ad")
    for path in (str(tmp_path / "a b" / "kidney.h5ad"), (tmp_path / "a b" / "kidney.h5ad").as_uri(),
                 {"url": (tmp_path / "a b" / "kidney.h5ad").as_uri(), "checksum": "md5:" + "0" * 32}):
        local = {"anndata": {"path": path, "region_key": "domain"}}
        assert validate_config(tissue_config(local, regions=None), SCHEMA)[
            "datasets"]["tissue"]["concepts"]["regions"] == {"cortex": "cortex"}, path
    remote = {"anndata": {"path": {"url": "https://example.org/a.h5ad", "checksum": "md5:" + "0" * 32},
                          "region_key": "domain"}}
    # none: no annotation, an .h5ad to download, regions under 10 spots, one region and nothing
    # outside it to rank its markers against, the synthetic tissue, an annotation not there (the
    # plan stops on the missing input; a config checks without data)
    few, one = tmp_path / "few.tsv", tmp_path / "one.tsv"
    few.write_text("1x1\tA\n2x2\tB\n")
    one.write_text("".join(f"{k}x1\tTissue\n" for k in range(30)))
    for source in ({"st_counts": {"counts": "c.tsv"}}, remote, {"anndata": {"path": "a.h5ad"}},
                   {"st_counts": {"counts": "c.tsv", "annotation": str(few)}},
                   {"st_counts": {"counts": "c.tsv", "annotation": str(one)}}, {"synthetic_tissue": {}},
                   {"st_counts": {"counts": "c.tsv", "annotation": str(tmp_path / "missing.tsv")}},
                   {"anndata": {"path": str(tmp_path / "missing.h5ad"), "region_key": "domain"}}):
        config = validate_config(tissue_config(source, regions=None, seed_genes={"penk": "Penk"}), SCHEMA)
        assert "regions" not in config["datasets"]["tissue"]["concepts"], source


def test_default_region_concepts_from_an_annotation_that_cannot_be_read_say_what_to_do(tmp_path):
    annotation = tmp_path / "layers.tsv"
    annotation.write_text("spot\n1x1\n")  # one column
    source = {"st_counts": {"counts": "c.tsv", "annotation": str(annotation)}}
    with pytest.raises(ConfigError, match=r"config key 'datasets.tissue.source.st_counts.annotation': "
                                          r".*layers.tsv: line 2 has 1 field\(s\).*"
                                          r"'datasets.tissue.concepts.regions' is left out; 'regions: none' "
                                          r"makes none$"):
        validate_config(tissue_config(source, regions=None), SCHEMA)
    validate_config(tissue_config(source, regions="none", seed_genes={"penk": "Penk"}), SCHEMA)


def test_regions_all_with_no_region_large_enough(tmp_path):
    annotation = tmp_path / "few.tsv"
    annotation.write_text("1x1\tA\n2x2\tA\n3x3\tB\n")
    source = {"st_counts": {"counts": "c.tsv", "annotation": str(annotation)}}
    with pytest.raises(ConfigError, match=r"no region of the annotation has 10 annotated spots and 2 "
                                          r"annotated spots outside it .*; A: 2, B: 1\)"):
        validate_config(tissue_config(source), SCHEMA)
    annotation.write_text("".join(f"{k}x1\tTissue\n" for k in range(30)))  # nothing outside
    with pytest.raises(ConfigError, match=r"2 annotated spots outside it .*; Tissue: 30\)"):
        validate_config(tissue_config(source), SCHEMA)
    with pytest.raises(ConfigError, match="'datasets.tissue.concepts.regions': 'every' is none of the forms "
                                          "this key takes: concept name -> annotated region"):
        validate_config(tissue_config(source, regions="every"), SCHEMA)
    with pytest.raises(ConfigError, match="'datasets.tissue.concepts.regions.x': 3 is none of the forms this "
                                          "key takes: a region of the annotation, or"):
        validate_config(tissue_config(source, regions={"x": 3}), SCHEMA)
