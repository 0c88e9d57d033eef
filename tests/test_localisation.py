"""Where the maps point: the localisation metrics on planted cases, face parts from CelebA's
landmarks, boxes given with images, and the localise stage on a tissue and on images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from concept_saliency.face_parts import CELEBA_PARTS, FACE_PARTS, face_part_boxes
from concept_saliency.localisation import (
    box_masks,
    mean_difference_maps,
    region_scores,
    score_against_regions,
)
from helpers import run_stage


def test_a_map_exactly_on_the_region_a_uniform_map_and_a_map_elsewhere():
    region = np.zeros(100, bool)
    region[:20] = True
    exact = region.astype(float)
    on = region_scores(exact, region)
    assert on["auroc"] == 1.0 and on["auroc_abs"] == 1.0 and on["peak_in_region"] == 1.0
    assert on["mass_inside"] == 1.0 and on["mass_ratio"] == pytest.approx(5.0)  # 1 / 0.2
    uniform = region_scores(np.ones(100), region)
    assert uniform["auroc"] == 0.5 and uniform["mass_ratio"] == pytest.approx(1.0)
    elsewhere = np.zeros(100)
    elsewhere[50:70] = 1.0
    off = region_scores(elsewhere, region)
    assert off["auroc"] < 0.5 and off["mass_ratio"] == 0.0 and off["peak_in_region"] == 0.0
    # the signed AUROC tells a map that lowers the score in the region from one that raises it
    assert region_scores(-exact, region)["auroc"] == 0.0 and region_scores(-exact, region)["auroc_abs"] == 1.0


def test_the_datas_own_difference_points_where_positives_differ_and_uses_the_training_split():
    rng = np.random.default_rng(0)
    x = rng.random((50, 8, 8, 3)).astype(np.float32) * 0.2
    positives = np.zeros((2, 50), bool)
    positives[0, ::2] = True                     # concept 0: a bright square at rows/cols 2-3
    positives[1, 1::3] = True                    # concept 1: a bright corner
    x[positives[0], 2:4, 2:4, :] += 0.7
    x[positives[1], 6:, 6:, 0] += 0.5
    fit_on = np.ones(50, bool)
    fit_on[40:] = False
    x[40:][positives[0, 40:], 5:7, 0:2, :] += 5.0    # held out: a square elsewhere, left out
    blocks = ((s, x[s:s + 7]) for s in range(0, 50, 7))   # blocks that cut across the classes
    maps = mean_difference_maps(blocks, positives, fit_on)
    assert maps.shape == (2, 8, 8)
    for k in range(2):
        p, n = positives[k] & fit_on, ~positives[k] & fit_on
        x64 = x.astype(np.float64)
        expected = np.abs(x64[p].mean(0) - x64[n].mean(0)).sum(-1)
        np.testing.assert_allclose(maps[k], expected, rtol=1e-6, atol=1e-9)
    square = np.zeros((8, 8), bool)
    square[2:4, 2:4] = True
    on = region_scores(maps[0], square)
    assert on["peak_in_region"] == 1.0 and on["mass_ratio"] > 5  # 16x would be all mass inside
    assert region_scores(maps[1], square)["mass_ratio"] < 1.5


def test_every_region_of_a_tissue_is_ranked():
    labels = np.array(["GCL"] * 10 + ["MCL"] * 5 + ["ONL"] * 10 + [""] * 3, dtype=object)
    spot_map = np.where(labels == "MCL", 2.0, 0.0) + np.where(labels == "GCL", 1.0, 0.0)
    table = score_against_regions(spot_map, labels).set_index("region")
    assert list(table.index) == ["GCL", "MCL", "ONL"]  # the unannotated spots are left out
    assert table.loc["MCL", "auroc"] == 1.0 and table.loc["MCL", "rank"] == 1
    assert table.loc["GCL", "rank"] == 2 and table.loc["ONL", "rank"] == 3


def test_face_parts_surround_their_landmarks_on_the_real_tables(data_dir):
    from concept_saliency.data.celeba import crop_box, packed_landmarks, read_landmarks

    land = read_landmarks(data_dir / "celeba" / "list_landmarks_align_celeba_000001-010000.csv")
    lm = land.values[:500].astype(float)
    size = 64
    packed = packed_landmarks(lm, size)
    # the packed positions are those of the paper's crop, resized
    for row, p in zip(lm[:5], packed[:5]):
        left, top, right, bottom = crop_box(row, 178, 218)
        np.testing.assert_allclose(p[0::2], (row[0::2] - left) * size / (right - left), rtol=1e-5)
        np.testing.assert_allclose(p[1::2], (row[1::2] - top) * size / (bottom - top), rtol=1e-5)
    boxes = face_part_boxes(packed, size)
    assert boxes.shape == (500, len(FACE_PARTS), 4) and (boxes >= 0).all() and (boxes <= size).all()
    part = {name: boxes[:, i] for i, name in enumerate(FACE_PARTS)}

    def contains(box, x, y):
        return (box[:, 0] <= x) & (x <= box[:, 2]) & (box[:, 1] <= y) & (y <= box[:, 3])

    assert contains(part["eyes"], packed[:, 0], packed[:, 1]).all()        # left eye
    assert contains(part["eyes"], packed[:, 2], packed[:, 3]).all()        # right eye
    assert contains(part["nose"], packed[:, 4], packed[:, 5]).mean() > 0.99
    assert contains(part["mouth"], packed[:, 6], packed[:, 7]).all()       # mouth corners
    assert contains(part["mouth"], packed[:, 8], packed[:, 9]).all()
    # top to bottom: forehead, brows, eyes, mouth, chin
    centre = (boxes[:, :, 1] + boxes[:, :, 3]) / 2
    order = [FACE_PARTS.index(p) for p in ("forehead", "brows", "eyes", "mouth", "chin")]
    assert (np.diff(centre[:, order], axis=1) > 0).all()
    masks = box_masks(part["mouth"], (size, size))
    assert masks.shape == (500, size, size) and 0.02 < masks.mean() < 0.25
    assert set(CELEBA_PARTS.values()) <= set(FACE_PARTS)


def write_tissue(tmp_path, layers: np.ndarray):
    """A 6x6 grid of spots with a region each, two gene concepts, and their maps."""
    from concept_saliency.artifacts import Provenance
    from concept_saliency.concept_vectors import Concept, write_concepts
    from concept_saliency.data.grid import GridIndex, write_grid
    from concept_saliency.saliency_maps import maps_writer

    n_spots = layers.size
    rows, cols = np.divmod(np.arange(n_spots), 6)
    index = GridIndex([f"{c}x{r}" for r, c in zip(rows, cols)], rows.astype(np.int32), cols.astype(np.int32),
                      (8, 8))
    grid = tmp_path / "grid.h5"
    write_grid(grid, index, list(layers.ravel()))
    Provenance("test").write(grid, "csm.spatial-grid")
    genes = [f"g{i}" for i in range(10)]
    members = np.zeros(10, bool)
    members[[0, 1]] = True
    concepts = tmp_path / "concepts.h5"
    write_concepts(concepts, [Concept("inner", "region", np.ones(3), members),
                              Concept("flat", "gene_set", np.ones(3), ~members)],
                   np.zeros((10, 2)), {"inner": np.array([0, 1]), "flat": np.array([2, 3])}, genes)
    Provenance("test").write(concepts, "csm.concepts")
    inner = np.zeros((2, 8, 8, 1))
    inner[:, rows[layers.ravel() == "inner"], cols[layers.ravel() == "inner"], 0] = 1.0
    maps = tmp_path / "vanilla_gradient.h5"
    with maps_writer(maps, "vanilla_gradient", {}) as out:
        out.add("inner", np.array([0, 1]), ["g0", "g1"], inner, np.zeros(2))
        out.add("flat", np.array([2, 3]), ["g2", "g3"], np.ones((2, 8, 8, 1)), np.zeros(2))
    Provenance("test").write(maps, "csm.saliency")
    return grid, concepts, maps


def test_the_localise_stage_scores_every_concept_against_every_region_of_a_tissue(tmp_path):
    layers = np.where(np.add.outer(np.arange(6), np.arange(6)) < 4, "inner", "outer").astype(object)
    grid, concepts, maps = write_tissue(tmp_path, layers)
    out = tmp_path / "evaluation"
    run_stage("localise", ("table", "per_sample", "figure"), concepts=str(concepts), maps=[str(maps)],
              grid=str(grid), table=str(out / "localisation.tsv"), per_sample=str(out / "per_map.tsv"),
              figure=str(out / "localisation.png"), regions={"inner": "inner"}, seed=0)
    table = pd.read_csv(out / "localisation.tsv", sep="\t").set_index(["method", "concept", "region"])
    on = table.loc[("vanilla_gradient", "inner", "inner")]
    assert on["auroc"] == 1.0 and on["rank"] == 1 and on["own"] == 1 and on["peak_in_region"] == 1.0
    assert table.loc[("vanilla_gradient", "inner", "outer"), "auroc"] == 0.0
    assert table.loc[("vanilla_gradient", "flat", "inner"), "auroc"] == 0.5  # uniform: chance
    assert table.loc[("vanilla_gradient", "flat", "inner"), "mass_ratio"] == pytest.approx(1.0)
    random = table.loc[("random", "inner", "inner")]
    assert 0.2 < random["auroc"] < 0.8
    assert (out / "localisation.png").stat().st_size > 5000


def test_boxes_given_with_images_are_packed_scaled_and_refused_beyond_their_image(tmp_path):
    from PIL import Image

    from concept_saliency.data.manifest import write_image_manifest
    from concept_saliency.data.regions import RegionStore
    from concept_saliency.errors import InputDataError
    from concept_saliency.stages.prepare_regions import prepare_regions

    folder = tmp_path / "faces"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(np.full((40, 80, 3), 60 * i, np.uint8)).save(folder / f"f{i}.png")  # 80 wide
    turned = Image.fromarray(np.full((80, 40, 3), 9, np.uint8))  # stored 40 wide, shown 80 wide
    exif = turned.getexif()
    exif[0x0112] = 6
    turned.save(folder / "f4.jpg", exif=exif)
    labels = tmp_path / "labels.csv"
    labels.write_text("image,Smiling\n" + "".join(f"f{i}.png,{i % 2}\n" for i in range(4)) + "f4.jpg,1\n")
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("image,region,x0,y0,x1,y1\nf1.png,mouth,20,20,60,40\nf3.png,mouth,0,0,40,20\n"
                     "f4.jpg,mouth,20,20,60,40\n")
    samples, regions = tmp_path / "samples.h5", tmp_path / "regions.h5"
    run_stage("prepare_images", ("samples",), images=str(folder), labels=str(labels), samples=str(samples),
              image_size=16, validation_fraction=0.25, seed=0)
    kw = dict(samples=str(samples), labels=str(labels), boxes=str(boxes), regions=str(regions),
              manifest=write_image_manifest(folder, labels, tmp_path / "manifest.tsv"))
    facts = run_stage("prepare_regions", ("regions",), **kw)
    assert facts["summary"]["box_regions"] == {"mouth": 3}
    with RegionStore(str(regions)) as store:
        assert store.box_names == ["mouth"] and store.mask_names == [] and store.image_shape == (16, 16)
        np.testing.assert_allclose(store.boxes[1, 0], [4, 8, 12, 16])   # x * 16/80, y * 16/40
        np.testing.assert_allclose(store.boxes[3, 0], [0, 0, 8, 8])
        np.testing.assert_allclose(store.boxes[4, 0], [4, 8, 12, 16])  # in the upright image
        assert np.isnan(store.boxes[0]).all()
    # a box beyond its image, and a line naming an image not in the table, are refused
    regions.unlink()
    boxes.write_text("image,region,x0,y0,x1,y1\nf1.png,mouth,20,20,90,40\n")
    with pytest.raises(InputDataError, match="boxes.csv: the box of 'mouth' on f1.png ends at"):
        prepare_regions(**kw)
    boxes.write_text("image,region,x0,y0,x1,y1\nf4.jpg,mouth,20,20,60,60\n")  # 60 > 40 high, upright
    with pytest.raises(InputDataError, match="the box of 'mouth' on f4.jpg ends at \\(60, 60\\), outside the 80x40"):
        prepare_regions(**kw)
    boxes.write_text("image,region,x0,y0,x1,y1\nnope.png,mouth,1,1,2,2\n")
    with pytest.raises(InputDataError, match="line 2: image 'nope.png' is not in the label table"):
        prepare_regions(**kw)
    assert not regions.exists()


def test_masks_given_with_images_are_packed_resized_and_refused_when_they_do_not_fit(tmp_path):
    from PIL import Image

    from concept_saliency.data.images import pack_image_folder
    from concept_saliency.data.region_packing import pack_image_regions
    from concept_saliency.data.regions import RegionStore
    from concept_saliency.errors import InputDataError

    folder, masks = tmp_path / "faces", tmp_path / "masks"
    (folder / "sub").mkdir(parents=True)
    for i in range(4):
        Image.fromarray(np.full((40, 80, 3), 60 * i, np.uint8)).save(folder / f"f{i}.png")  # 80 wide
    Image.fromarray(np.full((40, 80, 3), 90, np.uint8)).save(folder / "sub" / "g.jpg")
    labels = tmp_path / "labels.csv"
    labels.write_text("image,Smiling\n" + "".join(f"f{i}.png,{i % 2}\n" for i in range(4)) + "sub/g.jpg,1\n")
    (masks / "mouth" / "sub").mkdir(parents=True)
    (masks / "eyes").mkdir()
    mouth = np.zeros((40, 80), np.uint8)
    mouth[20:40, 20:60] = 1  # a 0/1 mask
    Image.fromarray(mouth).save(masks / "mouth" / "f1.png")
    Image.fromarray(mouth * 255).save(masks / "mouth" / "sub" / "g.png")  # 0/255, of a .jpg image
    tiny = np.zeros((40, 80), np.uint16)
    tiny[0:2, 0:2] = 1  # 16-bit, smaller than a packed pixel
    Image.fromarray(tiny).save(masks / "eyes" / "f3.png")
    painted = np.zeros((40, 80, 4), np.uint8)
    painted[20:40, 20:60, 3] = 255  # black, opaque, on a transparent layer
    Image.fromarray(painted).save(masks / "eyes" / "f1.png")
    Image.fromarray(mouth).save(masks / "mouth" / "f9.png")  # an image the table does not name
    Image.fromarray(mouth).save(masks / "eyes" / "f2.png.png")  # named as the image, a suffix added
    (masks / "README.txt").write_text("one folder per region\n")
    (masks / "mouth" / "._f1.png").write_bytes(b"\x00\x05\x16\x07")  # a Mac's resource fork: left out
    samples, regions = tmp_path / "samples.h5", tmp_path / "regions.h5"
    pack_image_folder(folder, labels, samples, 16, 0.2, 0)
    summary = pack_image_regions(samples, labels, folder, regions, masks_dir=masks)
    assert summary["mask_regions"] == {"eyes": 3, "mouth": 2} and summary["box_regions"] == {}
    assert summary["masks_without_image"] == 1
    box = np.zeros((16, 16), bool)
    box[8:16, 4:12] = True  # x 20-60 of 80, y 20-40 of 40, on 16x16
    with RegionStore(str(regions)) as store:
        assert store.mask_names == ["eyes", "mouth"] and store.boxes is None
        mouth_masks = store.masks(np.arange(5), "mouth")
        eyes = store.masks([3, 0, 1, 2], "eyes")
    np.testing.assert_array_equal(mouth_masks[1], box)
    np.testing.assert_array_equal(mouth_masks[4], box)
    assert not mouth_masks[[0, 2, 3]].any()  # no mask: no region
    assert eyes[0].sum() == 1 and eyes[0, 0, 0] and not eyes[1].any()  # the tiny region kept, one pixel
    np.testing.assert_array_equal(eyes[2], box)  # painted on transparency: its opaque part
    np.testing.assert_array_equal(eyes[3], box)

    def refused(message, boxes=None):
        regions.unlink(missing_ok=True)
        with pytest.raises(InputDataError, match=message):
            pack_image_regions(samples, labels, folder, regions, masks_dir=masks, boxes_path=boxes)
        assert not regions.exists()

    Image.fromarray(np.zeros((40, 40), np.uint8)).save(masks / "eyes" / "f0.png")
    refused("f0.png: the mask is 40x40 pixels and its image f0.png 80x40")
    (masks / "eyes" / "f0.png").unlink()
    (masks / "hat").mkdir()
    Image.fromarray(mouth).save(masks / "hat" / "f1_hat.png")
    refused("f1_hat.png: none of the 1 masks of 'hat' is named as an image of the label table "
            "\\('f1_hat' is not one\\)")
    (masks / "hat" / "f1_hat.png").unlink()
    Image.fromarray(mouth).save(masks / "mouth" / "f1.tif")
    refused("a second mask of 'mouth' for image 'f1'")
    (masks / "mouth" / "f1.tif").unlink()
    Image.fromarray(mouth).save(masks / "eyes" / "f2.tif")  # f2.png.png names it too
    refused("a second mask of 'eyes' for image 'f2'")
    (masks / "eyes" / "f2.tif").unlink()
    (tmp_path / "boxes.csv").write_text("image,region,x0,y0,x1,y1\nf1.png,mouth,20,20,60,40\n")
    refused("region 'mouth' has masks here and boxes in .*boxes.csv", boxes=tmp_path / "boxes.csv")
    Image.fromarray(mouth).save(masks / "f1.png")
    refused("masks/f1.png: a mask directly in the masks folder")


@pytest.mark.workflow
def test_a_mask_edited_in_its_folder_repacks_the_regions_through_snakemake(tmp_path):
    """``image_folder.masks`` through the workflow: planned with the localise stage, packed apart
    from the images, and a mask rewritten in place reruns the packing of the regions (the
    folder's manifest, written at planning). That it does not retrain: tests/faults/test_image_reruns.py."""
    import os

    from PIL import Image

    from concept_saliency.data.regions import RegionStore
    from workflow_run import copy_workflow, planned_jobs, snakemake

    work = copy_workflow(tmp_path / "wf")
    faces, masks = work / "faces", work / "masks" / "mouth"
    faces.mkdir()
    masks.mkdir(parents=True)
    mask = np.zeros((32, 32), np.uint8)
    mask[20:28, 8:24] = 255
    for i in range(8):
        Image.fromarray(np.full((32, 32, 3), 30 * i, np.uint8)).save(faces / f"f{i}.png")
        Image.fromarray(mask).save(masks / f"f{i}.png")
    (work / "labels.csv").write_text("image,Smiling\n" + "".join(f"f{i}.png,{i % 2}\n" for i in range(8)))
    (work / "shared_eyes").mkdir()  # a region folder linked in from elsewhere
    Image.fromarray(mask).save(work / "shared_eyes" / "f0.png")
    (work / "masks" / "eyes").symlink_to(work / "shared_eyes", target_is_directory=True)
    config = {"results": "results", "saliency": {"methods": {"vanilla_gradient": {}}},
              "datasets": {"faces": {"type": "images", "image_size": 32,
                                     "source": {"image_folder": {"images": "faces", "labels": "labels.csv",
                                                                 "masks": "masks"}},
                                     "models": {"m": {"preset": "celeba-32", "epochs": 1}},
                                     "concepts": {"attributes": ["Smiling"]},
                                     "localisation": {"regions": {"Smiling": "mouth"}}}}}
    (work / "masks.yaml").write_text(yaml.safe_dump(config))
    jobs = planned_jobs(work, "--configfile", "masks.yaml")
    assert jobs["prepare_images"] == 1 and jobs["prepare_regions"] == 1 and jobs["localise"] == 1, jobs
    manifest = work / "results" / "faces" / "raw" / "mask_manifest.tsv"
    assert [line.split("\t")[0] for line in manifest.read_text().splitlines()[3:]] == [
        "eyes/f0.png", *(f"mouth/f{i}.png" for i in range(8))]
    regions = "results/faces/data/regions.h5"
    snakemake(work, regions, "--cores", "1", "--configfile", "masks.yaml")
    with RegionStore(str(work / regions)) as store:
        assert store.mask_names == ["eyes", "mouth"] and store.masks([0], "mouth")[0].sum() == 8 * 16
    assert planned_jobs(work, regions, "--configfile", "masks.yaml") == {}
    mask[:] = 0
    mask[0:4, 0:4] = 255
    Image.fromarray(mask).save(masks / "f3.png")
    os.utime(masks / "f3.png", ns=(1, 1))  # a new content, an old date: the listing still changes
    assert planned_jobs(work, regions, "--configfile", "masks.yaml") == {"prepare_regions": 1}
    snakemake(work, regions, "--cores", "1", "--configfile", "masks.yaml")
    with RegionStore(str(work / regions)) as store:
        assert store.masks([3], "mouth")[0].sum() == 4 * 4
    os.utime(work / "shared_eyes" / "f0.png", ns=(2, 2))  # through the link
    assert planned_jobs(work, regions, "--configfile", "masks.yaml") == {"prepare_regions": 1}
    # a masks folder that is not there is refused while planning, naming the key
    config["datasets"]["faces"]["source"]["image_folder"]["masks"] = "nowhere"
    (work / "masks.yaml").write_text(yaml.safe_dump(config))
    done = snakemake(work, "-n", "--configfile", "masks.yaml", check=False)
    assert done.returncode != 0
    assert "config key 'datasets.faces.source.image_folder.masks': nowhere is not a folder" in done.stdout + done.stderr


def test_the_regions_a_config_gives_its_concepts():
    from concept_saliency.config import localised, own_regions
    from concept_saliency.errors import ConfigError

    celeba = {"type": "images", "source": {"celeba": {"directory": "/x"}},
              "concepts": {"attributes": ["Smiling", "Eyeglasses", "Young"]}}
    assert own_regions("c", celeba) == {"Eyeglasses": "eyes", "Smiling": "mouth"} and localised(celeba)
    celeba["localisation"] = {"regions": {"Young": "forehead", "Smiling": "chin"}}
    assert own_regions("c", celeba) == {"Eyeglasses": "eyes", "Smiling": "chin", "Young": "forehead"}
    celeba["localisation"] = {"regions": {"Smilling": "mouth"}}
    with pytest.raises(ConfigError, match="localisation.regions': no concept named Smilling"):
        own_regions("c", celeba)
    tissue = {"type": "spatial", "source": {"st_counts": {"counts": "c.tsv", "annotation": "a.tsv"}},
              "concepts": {"seed_genes": {"doc2g": "Doc2g"}, "regions": {"gcl": "GCL", "mcl": {"region": "MCL"}}},
              "localisation": {"regions": {"doc2g": "MCL"}}}
    assert own_regions("t", tissue) == {"doc2g": "MCL", "gcl": "GCL", "mcl": "MCL"} and localised(tissue)
    assert not localised({"type": "spatial", "source": {"st_counts": {"counts": "c.tsv"}}})


def test_editing_how_images_or_regions_are_packed_does_not_rerun_the_scoring():
    import concept_saliency
    from concept_saliency.code_closure import stage_code

    package = Path(concept_saliency.__file__).resolve().parent

    def modules(stage):
        return {Path(p).resolve().relative_to(package).as_posix() for p in stage_code(stage)}

    assert {"data/regions.py"} <= modules("localise")
    assert not {"data/images.py", "data/region_packing.py", "data/manifest.py"} & modules("localise")
    assert {"data/images.py", "data/region_packing.py", "data/regions.py"} <= modules("prepare_regions")


@pytest.mark.parametrize("given", ["boxes", "masks", "boxes in the sample store"])
def test_image_maps_are_scored_on_the_samples_that_show_the_concept_beside_the_datas_own_map(tmp_path, given):
    """Regions given with a user's images (a boxes table, masks: ``regions.h5``), or packed with
    the images as CelebA's face parts are (boxes in ``samples.h5``)."""
    import h5py
    from PIL import Image

    from concept_saliency.artifacts import Provenance
    from concept_saliency.concept_vectors import Concept, write_concepts
    from concept_saliency.data.manifest import write_image_manifest, write_mask_manifest
    from concept_saliency.data.samples import SampleStore, write_boxes
    from concept_saliency.errors import ArtifactError
    from concept_saliency.saliency_maps import maps_writer

    folder = tmp_path / "faces"
    folder.mkdir()
    for i in range(6):
        image = np.full((40, 80, 3), 40, np.uint8)
        if i % 2:  # the positives: a bright mouth
            image[20:40, 20:60] = 230
        Image.fromarray(image).save(folder / f"f{i}.png")
    (tmp_path / "labels.csv").write_text("image,Smiling\n" + "".join(f"f{i}.png,{i % 2}\n" for i in range(6)))
    if given == "boxes":
        (tmp_path / "boxes.csv").write_text("image,region,x0,y0,x1,y1\n" + "".join(
            f"f{i}.png,mouth,20,20,60,40\n" for i in range(6)))
        regions = {"boxes": str(tmp_path / "boxes.csv")}
    elif given == "masks":  # the same regions as masks, but for f5 (smiling, and not scored then)
        (tmp_path / "masks" / "mouth").mkdir(parents=True)
        mask = np.zeros((40, 80), np.uint8)
        mask[20:40, 20:60] = 255
        for i in range(5):
            Image.fromarray(mask).save(tmp_path / "masks" / "mouth" / f"f{i}.png")
        regions = {"masks": write_mask_manifest(tmp_path / "masks", tmp_path / "mask_manifest.tsv")}
    samples, labels = tmp_path / "samples.h5", tmp_path / "labels.csv"
    run_stage("prepare_images", ("samples",), images=str(folder), labels=str(labels),
              samples=str(samples), image_size=16, validation_fraction=0.0, seed=0)
    if given == "boxes in the sample store":  # as CelebA's crop_pack writes its face parts
        with h5py.File(samples, "a") as f:
            write_boxes(f, np.tile([[[4, 8, 12, 16]]], (6, 1, 1)), ["mouth"], 6)
        image_regions = {}
    else:
        run_stage("prepare_regions", ("regions",), samples=str(samples), labels=str(labels),
                  manifest=write_image_manifest(folder, labels, tmp_path / "manifest.tsv"),
                  regions=str(tmp_path / "regions.h5"), **regions)
        image_regions = {"image_regions": str(tmp_path / "regions.h5")}
    with SampleStore(str(samples)) as store:
        ids, positive = store.ids, store.labels[:, 0]
    concepts = tmp_path / "concepts.h5"
    write_concepts(concepts, [Concept("Smiling", "attribute", np.ones(3), positive),
                              Concept("Young", "attribute", np.ones(3), ~positive)], np.zeros((6, 2)),
                   {"Smiling": np.arange(6), "Young": np.arange(6)}, ids)
    Provenance("test").write(concepts, "csm.concepts")
    mouth = np.zeros((16, 16), bool)
    mouth[8:16, 4:12] = True  # the box scaled to 16x16: x 4-12, y 8-16
    maps = np.where(positive[:, None, None, None], mouth[None, :, :, None], ~mouth[None, :, :, None])
    path = tmp_path / "vanilla_gradient.h5"
    with maps_writer(path, "vanilla_gradient", {}) as out:  # on the mouth where it smiles, off elsewhere
        out.add("Smiling", np.arange(6), ids, np.repeat(maps.astype(float), 3, axis=-1), np.zeros(6))
        out.add("Young", np.arange(6), ids, np.ones((6, 16, 16, 3)), np.zeros(6))
    Provenance("test").write(path, "csm.saliency")
    table_path = tmp_path / "localisation.tsv"
    scoring = dict(maps=[str(path)], samples=str(samples), table=str(table_path), **image_regions,
                   per_sample=str(tmp_path / "per_map.tsv"), figure=str(tmp_path / "localisation.png"),
                   regions={"Smiling": "mouth", "Young": "Young"}, seed=0)
    # Young: the region named as the concept, its default, which the images lack
    run_stage("localise", ("table", "per_sample", "figure"), concepts=str(concepts), **scoring)
    table = pd.read_csv(table_path, sep="\t").set_index("method")
    assert set(table.index) == {"vanilla_gradient", "random", "mean_image_difference"}
    assert set(table["concept"]) == {"Smiling"}
    on = table.loc["vanilla_gradient"]
    scored = 2 if given == "masks" else 3  # the smiling faces with a region
    assert on["n_maps"] == scored and on["peak_in_region"] == 1.0  # the smiling faces only
    assert on["mass_ratio"] == pytest.approx(4.0)  # all of the map in a quarter of the image
    reference = table.loc["mean_image_difference"]  # the positives differ on the mouth only
    assert reference["n_maps"] == scored and reference["mass_ratio"] == pytest.approx(4.0, rel=0.05)
    assert table.loc["random", "mass_ratio"] == pytest.approx(1.0, abs=0.3)
    # regions of other samples than the maps' (a stale file): refused, not scored against the wrong images
    other = tmp_path / "other.h5"
    write_concepts(other, [Concept("Smiling", "attribute", np.ones(3), positive)], np.zeros((6, 2)),
                   {"Smiling": np.arange(6)}, ids[::-1])
    Provenance("test").write(other, "csm.concepts")
    with pytest.raises(ArtifactError, match="holds the regions of other samples than the model's"):
        run_stage("localise", ("table", "per_sample", "figure"), concepts=str(other), **scoring)
