"""Where the input files of a spatial dataset come from, and where the workflow reads them.

Light on purpose (no Keras, no scanpy): the Snakefile calls it while it builds the DAG.

A file in the config is a local path (read where it is), a URL (downloaded), or
``{url: <URL or local path>, checksum: md5:<hex> | sha256:<hex>}`` (downloaded,
or copied, and verified). Downloaded and copied files land in
``<results>/<dataset>/raw/download/<file name>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import unquote, urlparse

from .errors import ConfigError

#: source kind -> the config keys that name files the download rule may fetch
FILE_KEYS = {"st_counts": ("counts", "transformation", "image"), "anndata": ("path",)}
#: config key -> keyword of the prepare stage
ROLES = {"counts": "counts", "transformation": "transformation", "image": "image", "path": "h5ad",
         "annotation": "annotation"}


@dataclass(frozen=True)
class InputFile:
    path: str  # what the prepare stage reads
    source: str | None = None  # URL or local path to fetch into ``path``; None: read in place
    checksum: str | None = None


def is_url(value: str) -> bool:
    return urlparse(str(value)).scheme.lower() in ("http", "https", "ftp", "file")


def _file_name(value: str) -> str:
    name = PurePosixPath(unquote(urlparse(value).path if is_url(value) else value)).name
    return name or "download"


def input_files(name: str, dataset: dict, results: str) -> dict[str, InputFile]:
    """Prepare-stage keyword -> :class:`InputFile`, for an ``st_counts`` or ``anndata`` source."""
    (kind, spec), = dataset["source"].items()
    if kind not in FILE_KEYS:
        return {}
    out: dict[str, InputFile] = {}
    taken: dict[str, str] = {}
    for key in (*FILE_KEYS[kind], "annotation"):
        value = spec.get(key)
        if value is None:
            continue
        where = f"config key 'datasets.{name}.source.{kind}.{key}'"
        if isinstance(value, dict):
            source, checksum = str(value["url"]), value.get("checksum")
        else:
            source, checksum = str(value), None
        if key == "annotation" or (not is_url(source) and not checksum):
            out[ROLES[key]] = InputFile(source)
            continue
        file_name = _file_name(source)
        if file_name in taken:
            raise ConfigError(f"{where}: file name '{file_name}' is also the name of "
                              f"'{taken[file_name]}'; the downloads would overwrite each other")
        taken[file_name] = key
        out[ROLES[key]] = InputFile(f"{results}/{name}/raw/download/{file_name}", source, checksum)
    return out


def downloads(config: dict) -> dict[tuple[str, str], InputFile]:
    """``(dataset, file name) -> InputFile`` of every file the download rule fetches."""
    out = {}
    for name, dataset in config["datasets"].items():
        for f in input_files(name, dataset, config["results"]).values():
            if f.source is not None:
                out[(name, PurePosixPath(f.path).name)] = f
    return out
