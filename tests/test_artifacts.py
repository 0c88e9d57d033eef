"""Versioned artifacts: atomic writes, format refusal, provenance records."""

import json

import h5py
import numpy as np
import pytest

from concept_saliency import artifacts
from concept_saliency.errors import ArtifactError


def test_atomic_path_leaves_nothing_when_the_writer_fails(tmp_path):
    target = tmp_path / "out" / "table.tsv"
    with pytest.raises(RuntimeError):
        with artifacts.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert not target.exists()
    assert list((tmp_path / "out").iterdir()) == []
    with artifacts.atomic_path(target) as tmp:
        assert tmp.suffix == ".tsv" and tmp != target
        tmp.write_text("whole")
    assert target.read_text() == "whole"


def test_atomic_directory_is_removed_on_failure(tmp_path):
    target = tmp_path / "images"
    with pytest.raises(KeyboardInterrupt):
        with artifacts.atomic_path(target, suffix="") as tmp:
            tmp.mkdir()
            (tmp / "a.png").write_bytes(b"x")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_h5_round_trip_and_refusal_of_other_versions(tmp_path):
    path = tmp_path / "latents.h5"
    with artifacts.create_h5(path, "csm.latents") as f:
        f["z"] = np.ones((2, 3))
    with artifacts.open_h5(path, "csm.latents") as f:
        np.testing.assert_array_equal(f["z"][()], np.ones((2, 3)))
    with pytest.raises(ArtifactError, match="holds format 'csm.latents', expected 'csm.concepts'"):
        artifacts.open_h5(path, "csm.concepts")
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = artifacts.FORMATS["csm.latents"] + 1
    with pytest.raises(ArtifactError, match=r"latents.h5: format 'csm.latents' version 2 is newer "
                                            r"than the version this package reads \(1\)"):
        artifacts.open_h5(path, "csm.latents")
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(ArtifactError, match="no format tag"):
        artifacts.open_h5(tmp_path / "plain.h5", "csm.latents")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(ArtifactError, match="not a readable HDF5 file"):
        artifacts.open_h5(tmp_path / "junk.h5", "csm.latents")


def test_provenance_records_parameters_checksums_versions_and_time(tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("abc")
    prov = artifacts.Provenance("encode", {"batch_size": 8, "path": tmp_path}, {"samples": source})
    out = tmp_path / "latents.h5"
    out.write_bytes(b"")
    written = prov.write(out, "csm.latents")
    assert written.name == "latents.h5.prov.json"
    record = json.loads(written.read_text())
    assert record["format"] == "csm.latents" and record["format_version"] == 1
    assert record["stage"] == "encode"
    assert record["parameters"] == {"batch_size": 8, "path": str(tmp_path)}
    # sha256("abc")
    assert record["inputs"]["samples"]["checksum"] == (
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    assert record["package"]["name"] == "concept-saliency" and record["package"]["version"]
    assert {"python", "numpy", "keras"} <= set(record["libraries"])
    assert record["duration_s"] >= 0
    assert artifacts.check_provenance_format(out, "csm.latents")["stage"] == "encode"
    with pytest.raises(ArtifactError, match="expected 'csm.table'"):
        artifacts.check_provenance_format(out, "csm.table")


def test_directory_checksum_changes_with_content(tmp_path):
    (tmp_path / "a").write_text("1")
    first = artifacts.file_checksum(tmp_path)
    (tmp_path / "b").write_text("22")
    assert artifacts.file_checksum(tmp_path) != first
    assert "2 files" in artifacts.file_checksum(tmp_path)


def test_progress_lines_say_done_total_rate_and_eta():
    import logging

    from concept_saliency.progress import Progress, format_duration

    lines = []

    class Keep(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    logger = logging.getLogger("test-progress")
    logger.addHandler(Keep())
    logger.setLevel(logging.INFO)
    now = [0.0]
    p = Progress("encoded", 1000, "samples", every=30, logger=logger, clock=lambda: now[0])
    now[0] = 10.0
    p.update(100)  # 10 s in: not yet a line (every 30 s)
    assert lines == []
    now[0] = 40.0
    p.update(300)  # 400 done in 40 s: 10/s, 600 left -> 60 s
    assert lines == ["encoded 400/1000 (40%) 10.0 samples/s ETA 1m00s"]
    now[0] = 45.0
    p.update(600)  # the last one is always logged
    assert lines[-1].startswith("encoded 1000/1000 (100%)") and lines[-1].endswith("ETA 0s")
    assert format_duration(3725) == "1h02m05s"
