"""Downloads against a real HTTP server on loopback: resume, retries, checksums, no leftovers."""

import hashlib

import pytest

from http_server import LoopbackServer

from concept_saliency.data.download import DownloadError, download


@pytest.fixture
def served(tmp_path, data_dir):
    """The shared 32-image CelebA zip (230 KB), served from a loopback HTTP server."""
    root = tmp_path / "www"
    root.mkdir()
    payload = (data_dir / "celeba" / "img_align_celeba_178x218.zip").read_bytes()
    (root / "img.zip").write_bytes(payload)
    with LoopbackServer(root) as server:
        yield server, payload, tmp_path / "out"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_plain_download_verifies_the_published_checksum(served):
    server, payload, out = served
    got = download(f"{server.url}/img.zip", out / "img.zip", checksum=sha256(payload))
    assert got.read_bytes() == payload
    md5 = hashlib.md5(payload).hexdigest()
    download(f"{server.url}/img.zip", out / "again.zip", checksum=f"md5:{md5}")
    assert sorted(p.name for p in out.iterdir()) == ["again.zip", "img.zip"]


def test_a_dropped_connection_is_resumed_with_a_range_request(served):
    server, payload, out = served
    server.behaviour = "drop"
    download(f"{server.url}/img.zip", out / "img.zip", checksum=sha256(payload), backoff=0.01)
    assert (out / "img.zip").read_bytes() == payload
    ranges = [r for _, r in server.requests]
    assert ranges[0] is None and ranges[1] == f"bytes={len(payload) // 2}-"


def test_a_server_without_range_support_restarts_from_zero(served):
    server, payload, out = served
    (out).mkdir()
    (out / "img.zip.part").write_bytes(payload[:1000])  # left by a killed process
    server.behaviour = "norange"
    download(f"{server.url}/img.zip", out / "img.zip", checksum=sha256(payload))
    assert (out / "img.zip").read_bytes() == payload


def test_a_partial_file_left_by_a_killed_process_is_resumed(served):
    server, payload, out = served
    out.mkdir()
    (out / "img.zip.part").write_bytes(payload[:5000])
    download(f"{server.url}/img.zip", out / "img.zip", checksum=sha256(payload))
    assert (out / "img.zip").read_bytes() == payload
    assert server.requests == [("/img.zip", "bytes=5000-")]


def test_transient_errors_are_retried(served):
    server, payload, out = served
    server.behaviour = "flaky500"
    download(f"{server.url}/img.zip", out / "img.zip", checksum=sha256(payload), backoff=0.01)
    assert len(server.requests) == 3


def test_a_server_that_keeps_failing_leaves_nothing_and_says_why(served):
    server, payload, out = served
    server.behaviour = "error500"
    with pytest.raises(DownloadError, match=r"/img.zip: download failed: HTTP 500 .*after 2 retries"):
        download(f"{server.url}/img.zip", out / "img.zip", retries=2, backoff=0.01)
    assert not out.exists() or list(out.iterdir()) == []
    server.behaviour = "normal"
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{server.url}/missing.zip", out / "m.zip", backoff=0.01)
    assert len([r for r in server.requests if r[0] == "/missing.zip"]) == 1  # 404 is not retried


def test_a_wrong_checksum_leaves_nothing_and_names_expected_and_got(served):
    server, payload, out = served
    wrong = "md5:" + "0" * 32
    with pytest.raises(DownloadError) as info:
        download(f"{server.url}/img.zip", out / "img.zip", checksum=wrong)
    message = str(info.value)
    assert f"{server.url}/img.zip: checksum mismatch" in message
    assert "expected md5:" + "0" * 32 in message
    assert "got md5:" + hashlib.md5(payload).hexdigest() in message
    assert list(out.iterdir()) == []


def test_a_local_file_is_copied_and_verified(served, tmp_path):
    _, payload, out = served
    src = tmp_path / "local.zip"
    src.write_bytes(payload)
    download(str(src), out / "img.zip", checksum=sha256(payload))
    assert (out / "img.zip").read_bytes() == payload
