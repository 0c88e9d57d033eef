"""A reduced celeba-small through Snakemake, the files downloaded from a real loopback server.

The server serves the shared CelebA files and drops every first connection half way, so
each download is resumed with a Range request. Then: 1,000 images cropped to 32x32, the
celeba-32 VAE for two epochs (batch 8), three attribute concepts, two saliency methods,
the figures.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import shared_data
from http_server import LoopbackServer
from test_workflow import copy_workflow, planned_jobs, snakemake

pytestmark = pytest.mark.workflow

FILES = {  # served name -> checksum (md5 published with CelebA, sha256 from the data README)
    "img_align_celeba_89x109.zip":
        "sha256:ab81fd8491fba829c3f8344952da55b72205a33d2a8944c4a973eae797213187",
    "list_attr_celeba.txt": "md5:75e246fa4810816ffd6ee81facbd244c",
    "list_landmarks_align_celeba_000001-010000.csv":
        "sha256:a4f8390906fe27aafe935660d7f836358cd61d000b5f51fadb7ca98475f7b21f",
}
ROLES = dict(zip(("images", "attributes", "landmarks"), FILES))
ATTRIBUTES = ["Blond_Hair", "Male", "Smiling"]


def config_for(url: str, results: str = "results", checksums: dict | None = None) -> dict:
    checksums = {**FILES, **(checksums or {})}
    return {
        "results": results,
        "seed": 0,
        "threads": {"train": 2, "saliency": 2, "crop_pack": 2},
        "saliency": {"chunk_size": 32, "methods": {"vanilla_gradient": {},
                                                    "integrated_gradients": {"steps": 16}}},
        "datasets": {"faces": {
            "type": "images",
            "source": {"celeba": {
                "download": {role: {"url": f"{url}/{name}", "checksum": checksums[name]}
                             for role, name in ROLES.items()},
                "limit": 1000, "retries": 2, "backoff": 0.05}},
            "image_size": 32,
            "validation_fraction": 0.2,
            "models": {"small": {"preset": "celeba-32", "epochs": 2, "batch_size": 8}},
            "concepts": {"attributes": ATTRIBUTES, "num_samples": 50, "direction": "discriminant",
                         "adjust_for": ["Male"]},
            "explain": {"top_k": 3, "summary_rank": 3, "ids": ["000001"]},
        }},
    }


@pytest.fixture(scope="module")
def www(tmp_path_factory) -> Path:
    data = shared_data() / "celeba"
    if not all((data / name).exists() for name in FILES):
        pytest.skip(f"the CelebA subset is not in {data} (set CSM_TEST_DATA)")
    root = tmp_path_factory.mktemp("www")
    for name in FILES:
        (root / name).symlink_to(data / name)
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory, www):
    work = copy_workflow(tmp_path_factory.mktemp("celeba"))
    with LoopbackServer(www) as server:
        server.behaviour = "drop"  # every first response stops half way
        (work / "config" / "faces.yaml").write_text(yaml.safe_dump(config_for(server.url)))
        snakemake(work, "--cores", "2", "--configfile", "config/faces.yaml", timeout=1200)
        requests = list(server.requests)
    return work, requests


def test_every_file_is_downloaded_resumed_and_verified(run, www):
    work, requests = run
    raw = work / "results/faces/raw"
    assert sorted(p.name for p in raw.iterdir() if not p.name.endswith(".prov.json")) == sorted(FILES)
    for name, checksum in FILES.items():
        assert (raw / name).read_bytes() == (www / name).read_bytes()
        ranges = [r for path, r in requests if path == f"/{name}"]
        size = (www / name).stat().st_size
        assert ranges == [None, f"bytes={size // 2}-"], (name, ranges)  # dropped, then resumed
        record = json.loads((raw / f"{name}.prov.json").read_text())
        assert record["format"] == "csm.download" and record["parameters"]["checksum"] == checksum
        assert record["parameters"]["url"].endswith(f"/{name}") and record["file"]["bytes"] == size
    assert not list(raw.glob("*.part"))


def test_the_reduced_run_makes_every_artifact_and_separates_blond_hair(run):
    import h5py
    import pandas as pd

    from concept_saliency.concept_vectors import attribute_concepts, held_out_samples, read_concepts
    from concept_saliency.data.samples import SampleStore
    from concept_saliency.encoding import read_latents

    work, _ = run
    res = work / "results/faces"
    with SampleStore(str(res / "data/samples.h5")) as store:
        assert len(store) == 1000 and store.sample_shape == (32, 32, 3)
        assert store.ids[:2] == ["000001", "000002"] and len(store.label_names) == 40
        assert (store.split == 1).sum() == 200
    report = (res / "data/crop_pack_report.txt").read_text()
    assert "images packed" in report and "unreadable" in report
    prov = json.loads((res / "data/samples.h5.prov.json").read_text())
    assert prov["summary"]["counts"]["images packed"] == 1000 and prov["summary"]["workers"] == 2
    with h5py.File(res / "small/latents.h5") as f:
        assert f["z"].shape == (1000, 64)
    table = pd.read_csv(res / "small/concepts/separation.tsv", sep="\t").set_index("concept")
    assert list(table.index) == ATTRIBUTES and (table["evaluated_on"] == "held-out").all()
    # two short epochs on 800 images: hair colour separates already (labels and crops are
    # aligned with the images; a misaligned table would give 0.5), subtler attributes not yet
    assert table.loc["Blond_Hair", "auroc"] > 0.7, table
    assert (table["fit_n_positive"] == 50).all()
    cs = read_concepts(res / "small/concepts/concepts.h5")
    # the config's direction reaches the library: the same draw of 50 + 50 training latents,
    # whitened by their within-class covariance (shrinkage 0.5 by default), not the plain
    # difference; with Male held fixed for the other two attributes
    lat = read_latents(res / "small/latents.h5")
    with SampleStore(str(res / "data/samples.h5")) as store:
        order = [store.label_names.index(n) for n in ATTRIBUTES]
        labels = store.labels[:, order]
    fit_on = ~held_out_samples(lat.split)

    def vectors(**direction):
        return np.stack([c.vector for c in attribute_concepts(lat.z, labels, ATTRIBUTES, ATTRIBUTES,
                                                             fit_on, 50, seed=0, **direction)])

    np.testing.assert_allclose(cs.vectors, vectors(direction="discriminant", shrinkage=0.5,
                                                   adjust_for=("Male",)), rtol=1e-5)
    assert not np.allclose(cs.vectors, vectors(), rtol=1e-2)
    unadjusted = vectors(direction="discriminant", shrinkage=0.5)
    np.testing.assert_allclose(cs.vectors[1], unadjusted[1], rtol=1e-5)  # Male itself
    assert not np.allclose(cs.vectors[[0, 2]], unadjusted[[0, 2]], rtol=1e-2)
    for k, name in enumerate(ATTRIBUTES):
        chosen = cs.explain[name]
        assert len(chosen) == 4 and cs.ids[chosen[-1]] == "000001"  # top 3, then the config's id
        top = cs.scores[chosen[:3], k]
        assert list(top) == sorted(top, reverse=True) and cs.positives[k][chosen[:3]].all()
    for method in ("vanilla_gradient", "integrated_gradients"):
        with h5py.File(res / f"small/saliency/{method}.h5") as f:
            assert f["Blond_Hair/maps"].shape == (4, 32, 32, 3)
    for name in ATTRIBUTES:
        assert (res / f"small/figures/{name}.png").stat().st_size > 5000
    # where the maps point, with the random map and the data's own difference as references
    located = pd.read_csv(res / "small/evaluation/localisation.tsv", sep="\t").set_index(["method", "concept"])
    reference = located.loc["mean_image_difference"]
    assert reference.loc["Smiling", "region"] == "mouth" and reference.loc["Smiling", "n_maps"] == 4
    assert set(reference.index) == {"Blond_Hair", "Smiling"}  # Male is about no face part
    assert (reference["mass_ratio"] > 0).all() and reference["peak_in_region"].between(0, 1).all()
    summary = res / "small/summary/concept_maps.png"
    assert summary.read_bytes()[:4] == b"\x89PNG" and summary.stat().st_size > 10000
    record = json.loads((res / "small/summary/concept_maps.png.prov.json").read_text())
    assert record["format"] == "csm.figure" and record["parameters"]["rank"] == 3


def test_a_second_run_does_nothing(run):
    work, _ = run
    assert planned_jobs(work, "--configfile", "config/faces.yaml") == {}


def test_a_wrong_checksum_or_a_failing_server_stops_the_download_and_leaves_nothing(run, www):
    work, _ = run
    wrong = "md5:" + "0" * 32
    with LoopbackServer(www) as server:
        bad = config_for(server.url, results="results-bad",
                         checksums={"list_landmarks_align_celeba_000001-010000.csv": wrong})
        (work / "config" / "bad.yaml").write_text(yaml.safe_dump(bad))
        target = "results-bad/faces/raw/list_landmarks_align_celeba_000001-010000.csv"
        done = snakemake(work, target, "--cores", "1", "--configfile", "config/bad.yaml", check=False)
        out = done.stdout + done.stderr
        assert done.returncode != 0
        assert f"{server.url}/list_landmarks_align_celeba_000001-010000.csv: checksum mismatch" in out
        assert f"expected {wrong}" in out and "got md5:" in out
        assert not list((work / "results-bad/faces/raw").glob("list_landmarks*"))
    with LoopbackServer(www) as server:
        server.behaviour = "error500"
        (work / "config" / "down.yaml").write_text(yaml.safe_dump(config_for(server.url, "results-500")))
        target = "results-500/faces/raw/list_attr_celeba.txt"
        done = snakemake(work, target, "--cores", "1", "--configfile", "config/down.yaml", check=False)
        out = done.stdout + done.stderr
        assert done.returncode != 0
        assert f"{server.url}/list_attr_celeba.txt: download failed: HTTP 500" in out
        assert "after 2 retries" in out and len(server.requests) == 3
        assert not list((work / "results-500/faces/raw").glob("list_attr*"))
