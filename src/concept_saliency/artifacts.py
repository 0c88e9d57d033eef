"""Versioned artifacts: atomic writes, format checks and provenance records.

Every file the workflow writes is

- written under a temporary name in its final directory and renamed into place
  only when complete (:func:`atomic_path`), so an interrupted stage never leaves
  a truncated file under the real name;
- tagged with a format name and version: HDF5 files carry them as root
  attributes (:func:`create_h5` / :func:`open_h5`), other files in their
  provenance record; a reader refuses a format it does not know;
- accompanied by a provenance record ``<file>.prov.json``: format, parameters,
  input checksums, package version and git commit, library versions, backend,
  time taken (:class:`Provenance`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import json
import logging
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator, Mapping

from .errors import ArtifactError, DiskFullError

log = logging.getLogger(__name__)

#: Every artifact format this package writes, with the version it writes and reads.
FORMATS: dict[str, int] = {
    "csm.image-folder": 1,  # a folder of PNG images (the demo's shapes)
    "csm.count-matrix": 1,  # a spatial-transcriptomics count matrix, spots (XxY) x genes (.tsv.gz)
    "csm.samples": 1,  # samples to explain/train on: x (N, H, W, C), ids, labels
    "csm.masks": 1,  # ground-truth concept regions of the demo data
    "csm.regions": 1,  # regions given with a user's images (boxes, masks), packed to their size
    "csm.spatial-grid": 1,  # gene images on the spot grid, spot <-> pixel index
    "csm.anndata": 1,  # normalised spatial transcriptomics (.h5ad)
    "csm.spatial-maps": 1,  # the .h5ad above with concept maps on its spots (obs, obsm, var)
    "csm.consensus-maps": 1,  # the .h5ad above with concept maps averaged over a model's seeds (obs)
    "csm.download": 1,  # a downloaded input file (its record: URL and checksum)
    "csm.image-manifest": 1,  # the images of a user's folder: name, size, mtime (data/manifest.py)
    "csm.keras-model": 1,  # .keras files (the Keras format carries its own version)
    "csm.history": 1,  # training loss history (CSV)
    "csm.latents": 1,  # latent means of every sample
    "csm.concepts": 1,  # concept vectors, scores, chosen samples
    "csm.table": 1,  # TSV tables for people (separation, ground truth, ...)
    "csm.saliency": 1,  # attribution maps of one method for every concept
    "csm.figure": 1,  # PNG figures
    "csm.report": 1,  # text reports
}

PROVENANCE_SUFFIX = ".prov.json"
_LIBRARIES = (
    "keras",
    "tensorflow",
    "tensorflow-cpu",
    "jax",
    "jaxlib",
    "torch",
    "numpy",
    "h5py",
    "pandas",
    "anndata",
    "scanpy",
    "matplotlib",
    "snakemake",
)


# ---------------------------------------------------------------- atomic writes


def is_disk_full(exc: BaseException) -> bool:
    """An error of a full disk or quota: OSError with errno 28 (Python, Keras, pandas) or HDF5's
    own errors naming it (h5py raises OSError or, when closing, RuntimeError)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    return isinstance(exc, (OSError, RuntimeError)) and (
        "No space left on device" in text or "Disk quota exceeded" in text)


def format_bytes(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def disk_full_error(path: str | os.PathLike, *, written: int = 0,
                    expected: int | None = None) -> DiskFullError:
    """One line for a disk that filled while ``path`` was written: free space and what is needed."""
    folder = Path(path).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    need = (f"about {format_bytes(expected)} is needed" if expected and expected > written
            else f"more than {format_bytes(written)} is needed")
    return DiskFullError(f"{path}: the disk is full ({format_bytes(free)} free in {folder}); {need} "
                         f"to write it. Nothing was kept. Free space, or set 'results' to a disk "
                         f"with room, and rerun.")


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str | None = None,
                expected_bytes: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` on success.

    On any exception (KeyboardInterrupt included) the temporary file (or
    directory) is removed and ``path`` is left as it was. The temporary name keeps the extension
    (``name.tmp-<pid>.h5``) so libraries that look at it still work. A full disk becomes a
    :class:`~concept_saliency.errors.DiskFullError` naming the file, the free space and what
    is needed (``expected_bytes``, when the caller knows the size, else what was written).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = suffix if suffix is not None else "".join(path.suffixes[-1:])
    stem = path.name[: len(path.name) - len(ext)] if ext else path.name
    tmp = path.with_name(f".{stem}.tmp-{os.getpid()}{ext}")
    _remove_stale_temporaries(path.parent, f".{stem}.tmp-", ext)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        written = _size(tmp) if is_disk_full(exc) else 0
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        if is_disk_full(exc):
            raise disk_full_error(path, written=written, expected=expected_bytes) from None
        raise


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process, or unknowable: keep its file
    return True


def _remove_stale_temporaries(folder: Path, prefix: str, ext: str) -> None:
    """Temporaries of the same artifact left by a killed writer (``kill -9``, power loss):
    removed when the process that wrote them is gone, so interrupted runs leave nothing."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            name = entry.name
            if not (name.startswith(prefix) and name.endswith(ext)):
                continue
            pid = name[len(prefix): len(name) - len(ext) if ext else None]
            if not pid.isdigit() or int(pid) == os.getpid() or _pid_alive(int(pid)):
                continue
            log.info("removing %s, left by an interrupted run (process %s)", entry.path, pid)
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def write_tsv(table, path: str | os.PathLike) -> None:
    """A pandas table as TSV for people (6 significant digits), written atomically."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")


# ---------------------------------------------------------------- HDF5 formats


def check_format(found_format: str | None, found_version: Any, expected: str, path: Path) -> None:
    if found_format is None:
        raise ArtifactError(
            f"{path}: no format tag; this is not an artifact of this workflow, or it was "
            f"written by an interrupted run. Delete it and rerun the stage that makes it."
        )
    if found_format != expected:
        raise ArtifactError(
            f"{path}: holds format '{found_format}', expected '{expected}'. "
            f"Check the path given in the config."
        )
    known = FORMATS[expected]
    try:
        version = int(found_version)
    except (TypeError, ValueError):
        version = -1
    if version != known:
        newer = version > known
        raise ArtifactError(
            f"{path}: format '{expected}' version {found_version} is "
            f"{'newer than' if newer else 'not'} the version this package reads ({known}). "
            + (
                "Upgrade concept-saliency, or rerun the stage that made it."
                if newer
                else "Rerun the stage that made it (e.g. snakemake --forcerun <rule>)."
            )
        )


@contextlib.contextmanager
def create_h5(path: str | os.PathLike, fmt: str, expected_bytes: int | None = None):
    """Create an HDF5 artifact atomically, tagged with ``fmt`` and its version
    (``expected_bytes``: its size, where known, for the message of a full disk)."""
    import h5py

    if fmt not in FORMATS:
        raise ValueError(f"unknown artifact format {fmt!r}")
    with atomic_path(path, expected_bytes=expected_bytes) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = fmt
            f.attrs["format_version"] = FORMATS[fmt]
            f.attrs["created"] = _now()
            yield f


def open_h5(path: str | os.PathLike, fmt: str):
    """Open an HDF5 artifact for reading after checking its format and version."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"{path}: file not found. Run the stage that makes it first.")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ArtifactError(
            f"{path}: not a readable HDF5 file ({exc}). Delete it and rerun the stage that makes it."
        ) from None
    try:
        check_format(f.attrs.get("format"), f.attrs.get("format_version"), fmt, path)
    except ArtifactError:
        f.close()
        raise
    return f


def numeric_dataset(f, name: str, path: str | os.PathLike | None = None):
    """Dataset ``name`` of an open HDF5 artifact, checked to hold numbers.

    Object, string, opaque or reference data where numbers belong is refused: this
    package never turns stored objects into Python objects (no pickle, ever), and a
    file holding them was not written by it.
    """
    import h5py

    where = path if path is not None else f.filename
    item = f.get(name)
    if item is None:
        raise ArtifactError(f"{where}: no dataset '{name}'; the file is damaged or not an artifact "
                            f"of this workflow. Delete it and rerun the stage that makes it.")
    if not isinstance(item, h5py.Dataset) or item.dtype.kind not in "biuf":
        what = "a group" if not isinstance(item, h5py.Dataset) else f"{item.dtype} values"
        raise ArtifactError(f"{where}: dataset '{name}' holds {what}, not numbers; objects are never "
                            f"loaded. Delete the file and rerun the stage that makes it.")
    return item


def check_provenance_format(path: str | os.PathLike, fmt: str) -> dict:
    """Check the format recorded in the provenance record of a non-HDF5 artifact."""
    path = Path(path)
    prov_path = provenance_path(path)
    try:
        record = json.loads(prov_path.read_text())
    except FileNotFoundError:
        raise ArtifactError(
            f"{path}: no provenance record {prov_path.name} beside it; rerun the stage that makes it."
        ) from None
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{prov_path}: not valid JSON ({exc}); rerun the stage that makes it.") from None
    check_format(record.get("format"), record.get("format_version"), fmt, path)
    return record


# ---------------------------------------------------------------- provenance


def provenance_path(artifact: str | os.PathLike) -> Path:
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + PROVENANCE_SUFFIX)


def file_checksum(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """``<algorithm>:<hex>`` of a file (``sha256``, ``md5``, ``sha1``); of a directory, a sha256
    digest of its listing (names, sizes)."""
    path = Path(path)
    if path.is_dir():
        h = hashlib.sha256()
        n = 0
        for p in sorted(path.rglob("*")):
            if p.is_file():
                h.update(f"{p.relative_to(path)}\0{p.stat().st_size}\n".encode())
                n += 1
        return f"listing-sha256:{h.hexdigest()} ({n} files)"
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return f"{algorithm}:{h.hexdigest()}"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no", "--", "."],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def loaded_modules() -> list[str]:
    """Modules of this package loaded in this process: the code a stage ran (recorded in
    provenance; the rule's code inputs must cover them)."""
    return sorted(name for name in sys.modules if name.split(".")[0] == __package__)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


class Provenance:
    """Provenance of one stage run; writes a record beside each artifact it makes.

    ``inputs`` maps a role to a path (or a list of paths); their checksums are
    computed once, on the first record written.
    """

    def __init__(self, stage: str, parameters: Mapping[str, Any] | None = None,
                 inputs: Mapping[str, Any] | None = None):
        from . import __version__

        self.stage = stage
        self.parameters = dict(parameters or {})
        self.inputs = dict(inputs or {})
        self.started = time.time()
        self.package_version = __version__
        self._checksums: dict[str, Any] | None = None
        self.extra: dict[str, Any] = {}

    def checksums(self) -> dict[str, Any]:
        if self._checksums is None:
            def one(p):
                return {"path": str(p), "checksum": file_checksum(p)}

            self._checksums = {
                role: [one(p) for p in paths] if isinstance(paths, (list, tuple)) else one(paths)
                for role, paths in self.inputs.items()
            }
        return self._checksums

    def record(self, artifact: str | os.PathLike, fmt: str) -> dict[str, Any]:
        if fmt not in FORMATS:
            raise ValueError(f"unknown artifact format {fmt!r}")
        from .backend import backend_name

        return _jsonable({
            "format": fmt,
            "format_version": FORMATS[fmt],
            "artifact": Path(artifact).name,
            "stage": self.stage,
            "created": _now(),
            "duration_s": round(time.time() - self.started, 3),
            "parameters": self.parameters,
            "inputs": self.checksums(),
            "package": {
                "name": "concept-saliency",
                "version": self.package_version,
                "git_commit": _git_commit(),
                "modules": loaded_modules(),
            },
            "libraries": library_versions(),
            "keras_backend": backend_name(),
            "host": {"hostname": socket.gethostname(), "platform": sys.platform},
            **self.extra,
        })

    def write(self, artifact: str | os.PathLike, fmt: str) -> Path:
        """Write ``<artifact>.prov.json``; call after the artifact itself is in place."""
        record = self.record(artifact, fmt)
        out = provenance_path(artifact)
        write_text_atomic(out, json.dumps(record, indent=2, sort_keys=False) + "\n")
        return out


def read_provenance(artifact: str | os.PathLike) -> dict[str, Any]:
    return json.loads(provenance_path(artifact).read_text())
