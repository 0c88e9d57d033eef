"""Hostile files: zips that point outside their folder or expand without bound, pickles and
objects where numbers belong, config values that would be shell commands."""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from concept_saliency.data import celeba as C
from concept_saliency.errors import ArtifactError, ConfigError, InputDataError

from helpers import assert_no_partial_artifacts, run_stage, user_error

REPO = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------ zips


@pytest.fixture
def faces(tmp_path, data_dir):
    """Four real aligned images and their table rows (official attribute format, landmark CSV)."""
    celeba = data_dir / "celeba"
    with zipfile.ZipFile(celeba / "img_align_celeba_178x218.zip") as zf:
        images = {f"{i:06d}": zf.read(f"img_align_celeba/{i:06d}.jpg") for i in range(1, 5)}
    attrs = (celeba / "list_attr_celeba.txt").read_text().splitlines()
    (tmp_path / "attr.txt").write_text("\n".join(["4", *attrs[1:6]]) + "\n")
    land = (celeba / "list_landmarks_align_celeba_000001-010000.csv").read_text().splitlines()
    (tmp_path / "land.csv").write_text("\n".join(land[:5]) + "\n")
    return {"images": images, "dir": tmp_path, "results": tmp_path / "results"}


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data, zipfile.ZIP_DEFLATED)
    return path


def pack(faces, zip_path, *parts, **options):
    out = faces["results"] / "faces" / "data"
    kwargs = dict(images=str(zip_path), attributes=str(faces["dir"] / "attr.txt"),
                  landmarks=str(faces["dir"] / "land.csv"), samples=str(out / "samples.h5"),
                  report=str(out / "report.txt"), image_size=16, validation_fraction=0.25, seed=0,
                  **options)
    from concept_saliency.stages.crop_pack import crop_pack

    if not parts:
        return run_stage("crop_pack", ("samples", "report"), **kwargs)
    with user_error(str(zip_path), *parts, error=InputDataError) as refusal:
        crop_pack(**kwargs)
    message = refusal.message
    assert not (out / "samples.h5").exists()
    assert_no_partial_artifacts(faces["results"])
    return message


@pytest.mark.parametrize("evil", ["../000001.jpg", "img/../../000001.jpg", "/tmp/000001.jpg",
                                  "..\\..\\000001.jpg", "C:/Windows/000001.jpg"])
def test_a_zip_member_pointing_outside_the_archive_is_refused(faces, evil):
    members = {f"img_align_celeba/{k}.jpg": v for k, v in faces["images"].items() if k != "000001"}
    members[evil] = faces["images"]["000001"]
    path = make_zip(faces["dir"] / "img.zip", members)
    pack(faces, path, "points outside the archive", evil, "refusing this zip")
    assert not (faces["dir"].parent / "000001.jpg").exists()


def test_a_zip_bomb_image_is_refused_before_it_is_read(faces):
    members = {f"img_align_celeba/{k}.jpg": v for k, v in faces["images"].items()}
    members["img_align_celeba/000004.jpg"] = bytes(C.MAX_IMAGE_BYTES + 1)  # 64 MiB of zeros: 65 KB zipped
    path = make_zip(faces["dir"] / "img.zip", members)
    assert path.stat().st_size < 1 << 20
    pack(faces, path, "000004.jpg", "expands to", "refusing this zip")


def test_an_archive_expanding_beyond_the_limit_is_refused(faces):
    members = {f"img_align_celeba/{k}.jpg": v for k, v in faces["images"].items()}
    path = make_zip(faces["dir"] / "img.zip", members)
    with user_error(str(path), "expand to", "more than the limit of 20,000", error=InputDataError):
        C.list_images(source=path, max_expanded_bytes=20_000)
    assert len(C.list_images(path)) == 4


def test_the_configured_archive_limit_reaches_the_crop_pack_stage(faces):
    """config key max_archive_gb (the stage's max_archive_gb) is the limit the zip is held to."""
    members = {f"img_align_celeba/{k}.jpg": v for k, v in faces["images"].items()}
    path = make_zip(faces["dir"] / "img.zip", members)
    total = sum(len(v) for v in members.values())
    pack(faces, path, "expand to", "refusing this zip", max_archive_gb=(total - 1) / 1e9)
    pack(faces, path, max_archive_gb=(total + 1) / 1e9)
    assert (faces["results"] / "faces" / "data" / "samples.h5").exists()


def test_an_image_with_too_many_pixels_is_not_decoded(faces, monkeypatch):
    """A decompression bomb (a small file declaring a huge image) is refused from its header."""
    monkeypatch.setattr(C, "MAX_IMAGE_PIXELS", 178 * 218 - 1)
    path = make_zip(faces["dir"] / "img.zip",
                    {f"img_align_celeba/{k}.jpg": v for k, v in faces["images"].items()})
    pack(faces, path, "too many bad images", "4 unreadable", "pixels")


def test_archiver_junk_is_ignored_and_duplicate_ids_refused(faces):
    members = {f"img_align_celeba/{k}.jpg": v for k, v in faces["images"].items()}
    members["__MACOSX/img_align_celeba/._000001.jpg"] = b"\0\5\26\7 resource fork"
    pack(faces, make_zip(faces["dir"] / "img.zip", members))
    assert_no_partial_artifacts(faces["results"])
    members["other/000002.jpg"] = faces["images"]["000002"]
    (faces["results"] / "faces" / "data" / "samples.h5").unlink()
    pack(faces, make_zip(faces["dir"] / "img2.zip", members), "'000002' is in the zip twice")


def test_a_download_name_outside_the_raw_folder_is_refused(tmp_path):
    from concept_saliency.sources import CELEBA_REQUIRED, source_files

    spec = {"download": {r: {"url": f"https://example.org/{r}.txt"} for r in CELEBA_REQUIRED}}
    spec["download"]["images"]["name"] = ".."
    with user_error("download.images.name", "not a plain file name", error=ConfigError):
        source_files(name="faces", dataset={"source": {"celeba": spec}}, results=str(tmp_path))


# ------------------------------------------------------------------ no pickle, no objects


FORBIDDEN = {
    r"\b(import|from) (c?[pP]ickle|dill|joblib|marshal|shelve|cloudpickle)\b": "a pickle module",
    r"\b(pickle|dill|joblib|marshal|cloudpickle)\.loads?\(|pd\.read_pickle|\.read_pickle\(": "unpickling",
    r"np\.load\(|numpy\.load\(": "np.load (pickles unless allow_pickle=False)",
    r"allow_pickle\s*=\s*True": "allow_pickle=True",
    r"safe_mode\s*=\s*False|enable_unsafe_deserialization": "Keras unsafe loading",
    r"yaml\.load\(|yaml\.unsafe_load|yaml\.full_load": "YAML loading beyond safe_load",
    r"(?<![\w.])eval\(|(?<![\w.])exec\(": "eval/exec",
    r"shell\s*=\s*True|os\.system\(|os\.popen\(": "a shell",
    r"torch\.load\(": "torch.load (pickles)",
}


def test_the_code_never_unpickles_never_loads_unsafely_and_never_runs_a_shell():
    files = [*(REPO / "src").rglob("*.py"), *(REPO / "workflow").rglob("*.py"),
             *(REPO / "workflow").rglob("*.smk"), REPO / "Snakefile"]
    assert len(files) > 30
    found = []
    for path in files:
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            for pattern, what in FORBIDDEN.items():
                if re.search(pattern, code):
                    found.append(f"{path.relative_to(REPO)}:{lineno}: {what}: {line.strip()}")
    assert not found, "\n".join(found)


class _Payload:
    """Unpickling this runs code (it creates a file): the proof that nothing is unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_pickle_given_as_a_sample_store_is_refused_unread(tmp_path):
    from concept_saliency.data.samples import SampleStore

    marker = tmp_path / "pickle-ran"
    store = tmp_path / "results" / "x" / "data" / "samples.h5"
    store.parent.mkdir(parents=True)
    np.save(store.with_suffix(".npy"), np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    store.with_suffix(".npy").rename(store)
    with user_error(str(store), "not a readable HDF5 file", error=ArtifactError):
        SampleStore(path=str(store))
    (store.parent / "latents.h5").write_bytes(pickle.dumps(_Payload(marker)))
    from concept_saliency.encoding import read_latents

    with user_error("latents.h5", "not a readable HDF5", error=ArtifactError):
        read_latents(path=str(store.parent / "latents.h5"))
    assert not marker.exists()


def _tagged_h5(path, fmt, datasets):
    import h5py

    from concept_saliency.artifacts import FORMATS

    with h5py.File(path, "w") as f:
        f.attrs["format"], f.attrs["format_version"] = fmt, FORMATS[fmt]
        for name, (data, dtype) in datasets.items():
            f.create_dataset(name, data=data, dtype=dtype)


@pytest.mark.parametrize("dtype", ["str", "opaque", "reference", "group"])
def test_object_data_where_numbers_belong_is_refused(tmp_path, dtype):
    """An HDF5 artifact whose numbers are strings, opaque bytes, references or a group."""
    import h5py

    from concept_saliency.concept_vectors import read_concepts
    from concept_saliency.data.samples import SampleStore
    from concept_saliency.encoding import read_latents

    ids = (np.array(["a", "b"], dtype=object), h5py.string_dtype())
    split = (np.zeros(2, np.int8), None)
    if dtype == "str":
        bad = (np.array([b"cos\nsystem\n", b"x"], dtype=object), h5py.string_dtype())
    elif dtype == "opaque":
        bad = (np.void(pickle.dumps(_Payload(tmp_path / "ran"))), None)
    elif dtype == "reference":
        bad = (None, h5py.ref_dtype)
    samples, latents, concepts = (tmp_path / n for n in ("samples.h5", "latents.h5", "concepts.h5"))
    for path, fmt, name, extra in ((samples, "csm.samples", "x", {"ids": ids, "split": split}),
                                   (latents, "csm.latents", "z", {"ids": ids, "split": split}),
                                   (concepts, "csm.concepts", "vectors",
                                    {"names": (np.array(["c"], dtype=object), h5py.string_dtype()),
                                     "kinds": (np.array(["attribute"], dtype=object), h5py.string_dtype()),
                                     "positives": (np.ones((1, 2), bool), None),
                                     "scores": (np.zeros((2, 1), np.float32), None), "ids": ids})):
        if dtype == "group":
            _tagged_h5(path, fmt, extra)
            with h5py.File(path, "a") as f:
                f.create_group(name)
        elif dtype == "reference":
            _tagged_h5(path, fmt, extra)
            with h5py.File(path, "a") as f:
                f.create_dataset(name, shape=(2,), dtype=h5py.ref_dtype)
        else:
            _tagged_h5(path, fmt, extra | {name: bad})
    with user_error("samples.h5", "'x'", "not numbers", error=ArtifactError):
        SampleStore(path=str(samples))
    with user_error("latents.h5", "'z'", "not numbers", error=ArtifactError):
        read_latents(path=str(latents))
    with user_error("concepts.h5", "'vectors'", "not numbers", error=ArtifactError):
        read_concepts(path=str(concepts))
    assert not (tmp_path / "ran").exists()


# ------------------------------------------------------------------ no shell


def rule_blocks() -> dict[str, str]:
    blocks = {}
    for path in [REPO / "Snakefile", *(REPO / "workflow" / "rules").glob("*.smk")]:
        text = path.read_text()
        for m in re.finditer(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)*)", text, re.M):
            blocks[f"{path.name}:{m.group(1)}"] = m.group(2)
    return blocks


def test_every_rule_runs_a_script_never_a_shell_command():
    """Config values reach the stages as Python objects (script:), never through a shell."""
    blocks = rule_blocks()
    assert len(blocks) >= 15
    for name, body in blocks.items():
        directives = set(re.findall(r"^    (\w+):", body, re.M))
        assert not directives & {"shell", "run", "wrapper", "notebook", "cwl"}, name
        if name.endswith(":all"):
            continue
        assert "script" in directives, f"{name} has no script: directive ({sorted(directives)})"
