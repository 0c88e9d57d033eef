"""CelebA on the real shared subset: tables, the paper's crop, packing, the streaming loader,
the paper's architecture, and a reduced celeba-small run through Snakemake with the
download served from a real HTTP server on loopback."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from concept_saliency.data import celeba as C
from concept_saliency.data.samples import TRAIN, VALIDATION, SampleStore, append_sample_store
from concept_saliency.errors import ConfigError, InputDataError

LANDMARKS_1 = [69, 109, 106, 113, 77, 142, 73, 152, 108, 154]  # 000001.jpg


@pytest.fixture
def celeba(data_dir) -> Path:
    path = data_dir / "celeba"
    if not (path / "img_align_celeba_89x109.zip").exists():
        pytest.skip(f"the CelebA subset is not in {path}")
    return path


@pytest.fixture(scope="module")
def attributes(request):
    """The whole official attribute table, read once (202,599 rows)."""
    from helpers import shared_data

    path = shared_data() / "celeba" / "list_attr_celeba.txt"
    if not path.exists():
        pytest.skip(f"{path} not found")
    return C.read_attributes(path)


def extract(zip_path: Path, dest: Path, ids) -> dict[str, Path]:
    dest.mkdir(parents=True, exist_ok=True)
    out = {}
    with zipfile.ZipFile(zip_path) as zf:
        for sid in ids:
            out[sid] = dest / f"{sid}.jpg"
            out[sid].write_bytes(zf.read(f"img_align_celeba/{sid}.jpg"))
    return out


# ------------------------------------------------------------------ tables


def test_the_official_attribute_table_reads_whole(attributes):
    assert len(attributes.ids) == 202599 and attributes.columns == list(C.ATTRIBUTES)
    assert attributes.ids[0] == "000001.jpg" and attributes.values.dtype == np.int8
    # 000001.jpg: -1 1 1 -1 -1 ... (5_o_Clock_Shadow, Arched_Eyebrows, Attractive, ...)
    assert list(attributes.values[0, :5]) == [0, 1, 1, 0, 0]
    assert attributes.values[0, C.ATTRIBUTES.index("Young")] == 1
    assert 0.3 < attributes.values[:, C.ATTRIBUTES.index("Male")].mean() < 0.5


def test_official_txt_and_kaggle_csv_tables_read_alike(tmp_path, celeba, attributes):
    kaggle = C.read_landmarks(celeba / "list_landmarks_align_celeba_000001-010000.csv")
    assert len(kaggle.ids) == 10000 and list(kaggle.values[0]) == LANDMARKS_1
    official = tmp_path / "list_landmarks_align_celeba.txt"
    rows = [f"{i} " + " ".join(f"{v:4d}" for v in row) for i, row in zip(kaggle.ids[:50], kaggle.values)]
    official.write_text(f"50\n{' '.join(C.LANDMARKS)}\n" + "\n".join(rows) + "\n")
    back = C.read_landmarks(official)
    assert back.ids == kaggle.ids[:50] and np.array_equal(back.values, kaggle.values[:50])

    csv = tmp_path / "list_attr_celeba.csv"
    lines = [",".join(["image_id", *C.ATTRIBUTES])]
    lines += [",".join([i, *(("1" if v else "-1") for v in row)])
              for i, row in zip(attributes.ids[:30], attributes.values)]
    csv.write_text("\n".join(lines) + "\n")
    again = C.read_attributes(csv)
    assert again.ids == attributes.ids[:30] and np.array_equal(again.values, attributes.values[:30])

    part = tmp_path / "list_eval_partition.txt"
    part.write_text("000001.jpg 0\n000002.jpg 2\n")
    assert C.read_partition(part).values[:, 0].tolist() == [0, 2]
    part_csv = tmp_path / "list_eval_partition.csv"
    part_csv.write_text("image_id,partition\n000001.jpg,0\n000002.jpg,1\n")
    assert C.read_partition(part_csv).values[:, 0].tolist() == [0, 1]


def test_table_errors_name_the_file_the_line_and_what_to_do(tmp_path):
    header = f"2\n{' '.join(C.LANDMARKS)}\n"
    bad = tmp_path / "list_landmarks_align_celeba.txt"
    bad.write_text(header + "000001.jpg " + " ".join(["1"] * 10) + "\n000002.jpg 1 2 x 4 5 6 7 8 9 10\n")
    with pytest.raises(InputDataError, match=r"list_landmarks_align_celeba.txt: line 4, column "
                                             r"'righteye_x': 'x' is not an integer"):
        C.read_landmarks(bad)
    bad.write_text(header.replace("2\n", "3\n", 1) + "000001.jpg " + " ".join(["1"] * 10) + "\n"
                   + "000002.jpg " + " ".join(["1"] * 10) + "\n")
    with pytest.raises(InputDataError, match="announces 3 images but the table has 2 rows.*download it again"):
        C.read_landmarks(bad)
    bad.write_text(header + ("000001.jpg " + " ".join(["1"] * 10) + "\n") * 2)
    with pytest.raises(InputDataError, match="image '000001.jpg' appears twice \\(lines 3 and 4\\)"):
        C.read_landmarks(bad)
    attrs = tmp_path / "list_attr_celeba.csv"
    attrs.write_text("image_id,Smiling\n000001.jpg,1\n000002.jpg,2\n")
    with pytest.raises(InputDataError, match="list_attr_celeba.csv: line 3, attribute 'Smiling': 2 is not -1, 0 or 1"):
        C.read_attributes(attrs)
    wrong = tmp_path / "landmarks.csv"
    wrong.write_text("image_id,a,b\n000001.jpg,1,2\n")
    with pytest.raises(InputDataError, match="expected the landmark columns lefteye_x"):
        C.read_landmarks(wrong)


# ------------------------------------------------------------------ the crop


def test_crop_box_is_the_papers_box_scaled_to_the_image_and_clamped():
    # rows nose_y-105 : leftmouth_y+35, columns lefteye_x-50 : righteye_x+50
    assert C.crop_box(LANDMARKS_1, 178, 218) == (19.0, 37.0, 156.0, 187.0)
    assert C.crop_box(LANDMARKS_1, 89, 109) == (9.5, 18.5, 78.0, 93.5)
    assert C.crop_box(LANDMARKS_1, 356, 436) == (38.0, 74.0, 312.0, 374.0)
    near_edge = [20, 60, 150, 60, 90, 80, 60, 200, 120, 200]  # box leaves the image on 3 sides
    assert C.crop_box(near_edge, 178, 218) == (0.0, 0.0, 178.0, 218.0)
    assert C.crop_box([400, 0, 500, 0, 0, 0, 0, 0, 0, 0], 178, 218) is None


def test_crop_at_full_size_is_the_notebooks_array_slice(celeba):
    from PIL import Image

    with zipfile.ZipFile(celeba / "img_align_celeba_178x218.zip") as zf:
        im = Image.open(io.BytesIO(zf.read("img_align_celeba/000001.jpg")))
        im.load()
    sliced = np.asarray(im)[142 - 105:152 + 35, 69 - 50:106 + 50]  # img[nose_y-105:leftmouth_y+35, ...]
    expected = np.asarray(Image.fromarray(sliced).resize((64, 64), Image.BILINEAR, reducing_gap=None))
    np.testing.assert_array_equal(C.crop_resize(im, LANDMARKS_1, 64), expected)


def test_half_size_images_are_cropped_to_the_same_face_region(tmp_path, celeba):
    """The 89x109 copies, cropped with scaled landmarks, match the 178x218 originals' crops."""
    common = dict(image_size=32, validation_fraction=0.0, seed=0, limit=32)
    full, half = tmp_path / "full.h5", tmp_path / "half.h5"
    lm = celeba / "list_landmarks_align_celeba_000001-010000.csv"
    attrs = tmp_path / "attrs.csv"
    attrs.write_text("image_id,Smiling\n" + "".join(f"{i:06d}.jpg,1\n" for i in range(1, 10001)))
    C.crop_and_pack(celeba / "img_align_celeba_178x218.zip", attrs, lm, full, tmp_path / "r1.txt",
                    max_bad_fraction=1.0, **common)
    C.crop_and_pack(celeba / "img_align_celeba_89x109.zip", attrs, lm, half, tmp_path / "r2.txt", **common)
    with SampleStore(str(full)) as a, SampleStore(str(half)) as b:
        assert a.ids == b.ids == [f"{i:06d}" for i in range(1, 33)]
        xa, xb = a.read(), b.read()
    same = np.abs(xa - xb).mean()
    other = np.abs(xa - np.roll(xb, 1, axis=0)).mean()  # a different face
    # cropping the half-size image with unscaled landmarks takes the wrong region
    from PIL import Image

    with zipfile.ZipFile(celeba / "img_align_celeba_89x109.zip") as zf:
        small = Image.open(io.BytesIO(zf.read("img_align_celeba/000001.jpg"))).convert("RGB")
    unscaled = np.asarray(small.resize((32, 32), Image.BILINEAR, box=(19, 37, 89, 109))) / 255.0
    assert same < 0.04 and same < 0.3 * other
    assert np.abs(unscaled - xa[0]).mean() > 3 * np.abs(xb[0] - xa[0]).mean()


# ------------------------------------------------------------------ packing


@pytest.fixture
def small_source(tmp_path, celeba):
    """60 real images in a folder with a landmark CSV and an attribute CSV, to spoil at will."""
    ids = [f"{i:06d}" for i in range(1, 61)]
    files = extract(celeba / "img_align_celeba_89x109.zip", tmp_path / "img", ids)
    land = C.read_landmarks(celeba / "list_landmarks_align_celeba_000001-010000.csv")
    lm = tmp_path / "landmarks.csv"
    lm.write_text(",".join(["image_id", *C.LANDMARKS]) + "\n" + "".join(
        ",".join([land.ids[i], *map(str, land.values[i])]) + "\n" for i in range(60)))
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=(60, 3))
    at = tmp_path / "attrs.csv"
    at.write_text("image_id,Smiling,Male,Eyeglasses\n" + "".join(
        f"{sid}.jpg," + ",".join("1" if v else "-1" for v in row) + "\n" for sid, row in zip(ids, labels)))
    return {"dir": tmp_path / "img", "files": files, "landmarks": lm, "attributes": at,
            "labels": labels, "ids": ids}


def test_bad_images_are_left_out_and_listed_and_too_many_stop_the_stage(tmp_path, small_source):
    s = small_source
    data = s["files"]["000003"].read_bytes()
    s["files"]["000003"].write_bytes(data[: len(data) // 2])  # truncated JPEG
    s["files"]["000007"].write_bytes(b"not an image at all")
    s["files"]["000010"].unlink()  # a landmark row without its image
    shutil.copy(s["files"]["000001"], s["dir"] / "099999.jpg")  # an image without landmarks
    lines = s["attributes"].read_text().splitlines()
    s["attributes"].write_text("\n".join(l for l in lines if not l.startswith("000020")) + "\n")
    out, report = tmp_path / "samples.h5", tmp_path / "report.txt"
    summary = C.crop_and_pack(s["dir"], s["attributes"], s["landmarks"], out, report,
                              image_size=16, validation_fraction=0.25, seed=1, max_bad_fraction=0.1)
    counts = summary["counts"]
    assert counts["images expected"] == 61 and counts["images packed"] == 56
    assert (counts["unreadable"], counts["missing_image"], counts["no_landmarks"],
            counts["no_attributes"]) == (2, 1, 1, 1)
    text = report.read_text()
    problems = dict(line.split("\t")[:2] for line in text.splitlines() if line[:1].isdigit() and "\t" in line)
    assert problems == {"000003": "unreadable", "000007": "unreadable", "000010": "missing_image",
                        "099999": "no_landmarks", "000020": "no_attributes"}
    assert "images packed" in text and "56" in text
    with SampleStore(str(out)) as store:
        kept = [i for i in s["ids"] if i not in ("000003", "000007", "000010", "000020")]
        assert store.ids == kept and store.sample_shape == (16, 16, 3)
        assert store.label_names == ["Smiling", "Male", "Eyeglasses"]
        np.testing.assert_array_equal(store.labels, s["labels"][[s["ids"].index(i) for i in kept]])
        assert (store.split == VALIDATION).sum() == 14
        assert store.read().std() > 0.1  # real faces, not zeros

    out2 = tmp_path / "strict.h5"
    with pytest.raises(InputDataError) as info:
        C.crop_and_pack(s["dir"], s["attributes"], s["landmarks"], out2, tmp_path / "r2.txt",
                        image_size=16, max_bad_fraction=0.02)
    msg = str(info.value)
    assert "too many bad images" in msg and "of 61" in msg and "max_bad_fraction=0.02" in msg
    assert "listed in the stage's log" in msg and "1 missing_image" in msg
    assert not out2.exists() and not list(tmp_path.glob(".strict*"))  # nothing half-written
    assert not (tmp_path / "r2.txt").exists()  # a failed stage leaves none of its outputs


def test_the_official_partition_gives_the_split(tmp_path, small_source):
    s = small_source
    part = tmp_path / "list_eval_partition.txt"
    codes = [0] * 40 + [1] * 10 + [2] * 10
    part.write_text("".join(f"{sid}.jpg {c}\n" for sid, c in zip(s["ids"], codes)))
    C.crop_and_pack(s["dir"], s["attributes"], s["landmarks"], tmp_path / "s.h5", tmp_path / "r.txt",
                    image_size=16, partition=part, validation_fraction=0.5)
    with SampleStore(str(tmp_path / "s.h5")) as store:
        np.testing.assert_array_equal(store.split, np.where(np.array(codes) == 0, TRAIN, VALIDATION))


def test_parallel_packing_equals_serial_packing(tmp_path, celeba):
    official = (celeba / "list_attr_celeba.txt").read_text().splitlines()
    attrs = tmp_path / "list_attr_celeba.txt"  # the official format, first 1,000 rows
    attrs.write_text("\n".join(["1000"] + official[1:1002]) + "\n")
    args = (celeba / "img_align_celeba_89x109.zip", attrs,
            celeba / "list_landmarks_align_celeba_000001-010000.csv")
    for workers in (1, 2):
        C.crop_and_pack(*args, tmp_path / f"w{workers}.h5", tmp_path / f"r{workers}.txt",
                        image_size=32, workers=workers, limit=700, block=40)
    with SampleStore(str(tmp_path / "w1.h5")) as a, SampleStore(str(tmp_path / "w2.h5")) as b:
        assert len(a) == 700 and a.ids == b.ids and a.label_names == list(C.ATTRIBUTES)
        np.testing.assert_array_equal(a.x[()], b.x[()])
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.split, b.split)
        assert a.x.chunks[0] == 256 and a.x.compression is None


# ------------------------------------------------------------------ the streaming loader


def test_streaming_loader_reads_whole_chunks_in_windows_and_is_deterministic(tmp_path):
    import keras  # noqa: F401 - the loader is a keras PyDataset

    from concept_saliency.data.loader import BatchLoader

    n, chunk = 203, 8
    x = np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    with append_sample_store(tmp_path / "s.h5", (2, 2, 3), np.uint8, chunk_samples=chunk) as w:
        w.append(x, [str(i) for i in range(n)])
        w.finish(np.zeros(n, np.int8))
    train = np.setdiff1d(np.arange(n), np.arange(0, n, 5))  # every fifth held out
    with SampleStore(str(tmp_path / "s.h5")) as store:
        window_bytes = 3 * chunk * 12  # three chunks per window
        loader = BatchLoader(store, train, 10, seed=3, cache_bytes=0, window_bytes=window_bytes)
        assert loader.streaming and len(loader) == 17
        epochs = []
        for _ in range(2):
            batches = [loader[i] for i in range(len(loader))]
            assert len(loader._windows) <= 2
            seen = np.concatenate([b[:, 0, 0, 0] for b in batches]) * 255
            ids = np.round(seen).astype(int)
            assert sorted(ids.tolist()) == train.tolist()  # every training sample once
            assert np.allclose(np.concatenate(batches), store.read(ids))
            # samples of one window come together: few distinct chunk-groups in a row
            windows = loader._window_of[loader._order]
            assert (np.diff(windows) != 0).sum() == len(np.unique(windows)) - 1
            epochs.append(ids)
            loader.on_epoch_end()
        assert not np.array_equal(epochs[0], epochs[1])
        resumed = BatchLoader(store, train, 10, seed=3, epoch=1, cache_bytes=0, window_bytes=window_bytes)
        again = np.round(np.concatenate([resumed[i][:, 0, 0, 0] for i in range(len(resumed))]) * 255)
        np.testing.assert_array_equal(again.astype(int), epochs[1])
        ordered = BatchLoader(store, train, 10, shuffle=False, cache_bytes=0, window_bytes=window_bytes)
        got = np.round(np.concatenate([ordered[i][:, 0, 0, 0] for i in range(len(ordered))]) * 255)
        np.testing.assert_array_equal(got.astype(int), train)
        # raw=True: the same samples as uint8, unscaled (streaming and cached alike)
        for cache in (0, 2 << 30):
            raw = BatchLoader(store, train, 10, shuffle=False, cache_bytes=cache,
                              window_bytes=window_bytes, raw=True)
            got = np.concatenate([raw[i] for i in range(len(raw))])
            assert got.dtype == np.uint8 and raw.streaming == (cache == 0)
            np.testing.assert_array_equal(got[:, 0, 0, 0], train)


# ------------------------------------------------------------------ the architecture


def test_paper_celeba_is_the_notebooks_vae_layer_by_layer():
    from concept_saliency.model import build_vae, get_preset

    vae = build_vae(get_preset("paper-celeba"), (128, 128, 3))
    kinds = [type(layer).__name__ for layer in vae.encoder.layers[1:]]
    assert kinds == ["Conv2D", "ReLU", "BatchNormalization"] * 5 + [
        "Flatten", "Dense", "ReLU", "BatchNormalization", "Dense", "Dense"]
    convs = [l for l in vae.encoder.layers if type(l).__name__ == "Conv2D"]
    assert [(l.filters, l.kernel_size[0], l.strides[0]) for l in convs] == [
        (64, 5, 2), (128, 5, 2), (256, 5, 2), (512, 5, 2), (1024, 2, 2)]
    deconvs = [l for l in vae.decoder.layers if type(l).__name__ == "Conv2DTranspose"]
    assert [(l.filters, l.kernel_size[0], l.strides[0]) for l in deconvs] == [
        (1024, 2, 2), (512, 5, 2), (256, 5, 2), (128, 5, 2), (64, 5, 2)]
    out = vae.decoder.layers[-1]
    assert (type(out).__name__, out.filters, out.kernel_size[0], out.strides[0]) == ("Conv2D", 3, 5, 1)
    assert out.activation.__name__ == "sigmoid"
    # parameter counts of the notebook's Keras model, layer by layer
    conv = lambda k, i, o: k * k * i * o + o  # noqa: E731
    bn = lambda c: 4 * c  # noqa: E731
    encoder = (conv(5, 3, 64) + conv(5, 64, 128) + conv(5, 128, 256) + conv(5, 256, 512)
               + conv(2, 512, 1024) + bn(64 + 128 + 256 + 512 + 1024)
               + 16384 * 512 + 512 + bn(512) + 2 * (512 * 400 + 400))
    decoder = (400 * 16384 + 16384 + bn(1024) + conv(2, 1024, 1024) + conv(5, 1024, 512)
               + conv(5, 512, 256) + conv(5, 256, 128) + conv(5, 128, 64)
               + bn(1024 + 512 + 256 + 128 + 64) + conv(5, 64, 3))
    assert vae.encoder.count_params() == encoder
    assert vae.decoder.count_params() == decoder


def test_small_celeba_presets_keep_the_structure_and_round_trip(tmp_path):
    from concept_saliency.model import build_vae, get_preset, latent_model, load_model

    for name, size in (("celeba-32", 32), ("celeba-64", 64)):
        vae = build_vae(get_preset(name), (size, size, 3), seed=0)
        assert vae.decoder.output.shape[1:] == (size, size, 3)
        x = np.random.default_rng(0).random((2, size, size, 3)).astype("float32")
        vae.encoder.save(tmp_path / f"{name}.keras")
        enc = latent_model(load_model(tmp_path / f"{name}.keras"))
        np.testing.assert_allclose(np.asarray(enc(x)), np.asarray(vae(x)["z_mean"]), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ the config


def test_the_source_is_a_directory_or_downloads_never_both(tmp_path, celeba):
    from concept_saliency.sources import source_files

    def resolve(spec, results="res"):
        return source_files("c", {"source": {"celeba": spec}}, results)

    with pytest.raises(ConfigError, match="give either 'directory'.*or 'download'.*one of them"):
        resolve({})
    with pytest.raises(ConfigError, match="not both"):
        resolve({"directory": str(celeba), "download": {}})
    with pytest.raises(ConfigError, match=r"source.celeba.directory': .* holds none of "
                                          r"list_landmarks_align_celeba.txt, list_landmarks_align_celeba.csv; "
                                          r"name the landmarks file with 'files.landmarks'"):
        resolve({"directory": str(celeba), "files": {"images": "img_align_celeba_89x109.zip"}})
    found = resolve({"directory": str(celeba), "files": {
        "images": "img_align_celeba_89x109.zip",
        "landmarks": "list_landmarks_align_celeba_000001-010000.csv"}})
    assert found["attributes"].path == str(celeba / "list_attr_celeba.txt")
    assert "partition" not in found and not any(f.fetched for f in found.values())
    dl = resolve({"download": {
        "images": {"url": "https://example.org/a/img_align_celeba.zip?x=1", "checksum": "md5:00"},
        "attributes": {"url": "https://example.org/uc?id=1", "name": "list_attr_celeba.txt"},
        "landmarks": {"url": "https://example.org/list_landmarks_align_celeba.csv"}}})
    assert dl["images"].path == "res/c/raw/img_align_celeba.zip"
    assert dl["images"].url.startswith("https://example.org/a/") and dl["images"].checksum == "md5:00"
    assert {f.path.rsplit("/", 1)[1] for f in dl.values()} == {
        "img_align_celeba.zip", "list_attr_celeba.txt", "list_landmarks_align_celeba.csv"}


def test_shipped_celeba_configs_are_valid():
    import yaml

    from helpers import REPO
    from concept_saliency.config import concept_names, validate_config

    for name in ("celeba.yaml", "celeba-small.yaml"):
        config = validate_config(yaml.safe_load((REPO / "config" / name).read_text()),
                                 REPO / "workflow" / "schemas" / "config.schema.yaml")
        for ds, cfg in config["datasets"].items():
            assert concept_names(ds, cfg) == list(C.ATTRIBUTES)
    paper = yaml.safe_load((REPO / "config" / "celeba.yaml").read_text())["datasets"]["celeba"]
    assert paper["image_size"] == 128 and paper["models"]["paper"]["preset"] == "paper-celeba"
    assert paper["models"]["paper"]["batch_size"] == 20
    official = {"img_align_celeba.zip": "md5:00d2c5bc6d35e252742224ab0c1e8fcb",
                "list_attr_celeba.txt": "md5:75e246fa4810816ffd6ee81facbd244c",
                "list_landmarks_align_celeba.txt": "md5:cc24ecafdb5b50baae59b03474781f8c",
                "list_eval_partition.txt": "md5:d32c9cbf5e040fd4025c592c306e6668"}
    got = {f["name"]: f["checksum"] for f in paper["source"]["celeba"]["download"].values()}
    assert got == official


def test_the_crop_stage_does_not_depend_on_scoring_or_concept_code():
    """Rules list the modules their stage imports; the crop (and so training after it) must not
    rerun when concept vectors, saliency or the scoring of maps change."""
    from concept_saliency.code_closure import stage_code

    files = {Path(p).relative_to(Path(C.__file__).parents[1]).as_posix() for p in stage_code("crop_pack")}
    assert {"data/celeba.py", "face_parts.py"} <= files
    assert not files & {"concept_vectors.py", "evaluation.py", "localisation.py", "saliency.py",
                        "saliency_maps.py", "model.py"}, sorted(files)
