"""Where each dataset's input files are: one resolver for every kind of source.

:func:`source_files` returns, for a dataset of the config, the files its first
stage reads, by role (the stage's keyword: ``counts``, ``images``, ``labels``,
...). A file is read where it is, or, when the config gives a URL or a checksum,
fetched first by the one ``download`` rule into ``<results>/<dataset>/raw/`` and
verified. :func:`downloads` lists every such fetch of a config.

How each source kind names its files:

- ``synthetic_shapes``, ``synthetic_tissue``: made by the demo's generator rules under ``raw/``;
- ``image_folder``: the label table and the folder's manifest (``raw/image_manifest.tsv``,
  written while the DAG is built, see :mod:`.data.manifest`); the ``regions`` boxes and the
  ``masks`` folder's manifest (``raw/mask_manifest.tsv``), roles ``boxes`` and ``masks``, which
  the prepare_regions stage reads (not the packing of the images);
- ``celeba``: ``directory`` (files the user has; official or Kaggle names are found) or
  ``download`` (each ``{url, checksum, name}`` fetched to ``raw/<name>``); a folder of
  images is tracked by its manifest (``raw/celeba_images_manifest.tsv``);
- ``st_counts``: ``counts``, ``transformation``, ``image``, ``annotation``; ``anndata``:
  ``path`` (role ``h5ad``). Each is a local path, a URL, or ``{url, checksum}``
  (fetched to ``raw/download/<file name>``);
- ``visium``: the files of Space Ranger's ``outs`` folder (``path``), each by its role
  (:data:`VISIUM_FILES`), so that editing any of them reruns the prepare stage (a folder
  input would count by its own modification time only); a required file that is missing
  is refused while the DAG is built, naming it and the config key.

Light on purpose (standard library only): the Snakefile calls it while it builds the DAG.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

from .errors import ConfigError

#: The 40 CelebA attributes, in the order of the official table.
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows",
    "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup",
    "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard",
    "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns",
    "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)
#: CelebA file names in a ``directory``, official first, then the Kaggle mirror's
CELEBA_NAMES = {
    "images": ("img_align_celeba.zip", "img_align_celeba"),
    "attributes": ("list_attr_celeba.txt", "list_attr_celeba.csv"),
    "landmarks": ("list_landmarks_align_celeba.txt", "list_landmarks_align_celeba.csv"),
    "partition": ("list_eval_partition.txt", "list_eval_partition.csv"),
}
CELEBA_REQUIRED = ("images", "attributes", "landmarks")
#: spatial source kind -> config key -> role (the prepare stage's keyword)
SPATIAL_KEYS = {"st_counts": {"counts": "counts", "transformation": "transformation",
                              "image": "image", "annotation": "annotation"},
                "anndata": {"path": "h5ad"}}
#: Space Ranger's files inside ``outs/``, by role (the prepare stage's keyword): the first of the
#: names that exists; ``None`` marks an optional file. Space Ranger 1 writes the positions
#: without a header as ``tissue_positions_list.csv``, 2 and later with one as ``tissue_positions.csv``.
VISIUM_FILES = {
    "matrix": ("{count_file}_feature_bc_matrix.h5",),
    "positions": ("spatial/tissue_positions.csv", "spatial/tissue_positions_list.csv"),
    "scalefactors": ("spatial/scalefactors_json.json",),
    "hires_image": ("spatial/tissue_hires_image.png", None),
    "lowres_image": ("spatial/tissue_lowres_image.png", None),
}


@dataclass(frozen=True)
class SourceFile:
    """One input file: ``path`` is what the stage reads; ``url`` (a URL or a local path) is
    fetched there first when set, and verified against ``checksum``."""

    path: str
    url: str | None = None
    checksum: str | None = None

    @property
    def fetched(self) -> bool:
        return self.url is not None


def is_url(value: str) -> bool:
    return urlparse(str(value)).scheme.lower() in ("http", "https", "ftp", "file")


def _file_name(value: str) -> str:
    name = PurePosixPath(unquote(urlparse(value).path if is_url(value) else value)).name
    return name or "download"


def source_kind(name: str, dataset: dict) -> str:
    """The one source key of a dataset (``datasets.<name>.source``)."""
    source = dataset.get("source") or {}
    if len(source) != 1:
        raise ConfigError(f"config key 'datasets.{name}.source': give exactly one source, "
                          f"not {len(source)}")
    return next(iter(source))


def source_files(name: str, dataset: dict, results: str) -> dict[str, SourceFile]:
    """Role -> :class:`SourceFile` of the dataset's first stage (see the module docstring)."""
    kind = source_kind(name, dataset)
    spec = dataset["source"][kind]
    raw = f"{results}/{name}/raw"
    if kind == "synthetic_shapes":
        return {"images": SourceFile(f"{raw}/images"), "labels": SourceFile(f"{raw}/attributes.tsv")}
    if kind == "synthetic_tissue":
        return {"counts": SourceFile(f"{raw}/counts.tsv.gz"),
                "annotation": SourceFile(f"{raw}/annotation.tsv")}
    if kind == "image_folder":
        files = {"manifest": SourceFile(f"{raw}/image_manifest.tsv"), "labels": SourceFile(spec["labels"])}
        if spec.get("regions"):
            files["boxes"] = SourceFile(spec["regions"])
        if spec.get("masks"):
            if not os.path.isdir(spec["masks"]):
                raise ConfigError(f"config key 'datasets.{name}.source.image_folder.masks': {spec['masks']} "
                                  f"is not a folder; give the folder holding one subfolder of masks per region")
            files["masks"] = SourceFile(f"{raw}/mask_manifest.tsv")  # written when the DAG is built
        return files
    if kind == "celeba":
        return _celeba_files(name, spec, raw)
    if kind == "visium":
        return _visium_files(name, spec)
    return _spatial_files(name, kind, spec, raw)


def visium_outs(name: str, spec: dict) -> Path:
    """Space Ranger's ``outs`` folder: ``path``, or ``path/outs`` when ``path`` is the run's folder."""
    key = f"datasets.{name}.source.visium.path"
    folder = Path(spec["path"])
    if not folder.is_dir():
        raise ConfigError(f"config key '{key}': {folder} is not a folder; give Space Ranger's 'outs' "
                          f"folder (the one holding filtered_feature_bc_matrix.h5 and spatial/)")
    if not (folder / "spatial").is_dir() and (folder / "outs" / "spatial").is_dir():
        return folder / "outs"
    return folder


def _visium_files(name: str, spec: dict) -> dict[str, SourceFile]:
    key = f"datasets.{name}.source.visium"
    outs = visium_outs(name, spec)
    count_file = spec.get("count_file", "filtered")
    files: dict[str, SourceFile] = {}
    for role, names in VISIUM_FILES.items():
        candidates = [n.format(count_file=count_file) for n in names if n is not None]
        found = [outs / n for n in candidates if (outs / n).is_file()]
        if found:
            files[role] = SourceFile(str(found[0]))
        elif None not in names:
            hint = ""
            if role == "positions" and (outs / "spatial" / "tissue_positions.parquet").exists():
                hint = ("; it has tissue_positions.parquet, as Visium HD's binned outputs have: only "
                        "Visium's spot arrays (CSV positions) are read")
            elif role == "matrix":
                other = "raw" if count_file == "filtered" else "filtered"
                if (outs / f"{other}_feature_bc_matrix.h5").is_file():
                    hint = f"; it has {other}_feature_bc_matrix.h5: set '{key}.count_file: {other}'"
            raise ConfigError(f"config key '{key}.path': {outs} has no {' or '.join(candidates)} "
                              f"(Space Ranger's {role.replace('_', ' ')} file){hint}")
    if spec.get("annotation"):
        files["annotation"] = SourceFile(str(spec["annotation"]))
    return files


def _celeba_files(name: str, spec: dict, raw: str) -> dict[str, SourceFile]:
    key = f"datasets.{name}.source.celeba"
    has_dir, has_download = "directory" in spec, "download" in spec
    if has_dir == has_download:
        raise ConfigError(
            f"config key '{key}': give either 'directory' (files you already have) or 'download' "
            f"(URLs and checksums), {'not both' if has_dir else 'one of them'}"
        )
    if has_download:
        files: dict[str, SourceFile] = {}
        for role, item in spec["download"].items():
            fname = item.get("name") or Path(urlparse(item["url"]).path).name
            if fname and (fname in (".", "..") or "/" in fname or "\\" in fname):
                raise ConfigError(f"config key '{key}.download.{role}.name': {fname!r} is not a plain "
                                  f"file name (it is a file in {raw}); give a name without '/'")
            taken = {PurePosixPath(f.path).name for f in files.values()}
            if not fname or fname in taken:
                raise ConfigError(
                    f"config key '{key}.download.{role}': "
                    + (f"file name {fname!r} is used twice" if fname else
                       "the URL ends in no file name; give one with 'name'"))
            files[role] = SourceFile(f"{raw}/{fname}", item["url"], item.get("checksum"))
        return files
    directory = Path(spec["directory"])
    if not directory.is_dir():
        raise ConfigError(f"config key '{key}.directory': {directory} is not a directory")
    given = spec.get("files") or {}
    files = {}
    for role, names in CELEBA_NAMES.items():
        if role in given:
            path = directory / given[role]
            if not path.exists():
                raise ConfigError(f"config key '{key}.files.{role}': {path} does not exist")
            files[role] = SourceFile(str(path))
            continue
        found = [directory / n for n in names if (directory / n).exists()]
        if found:
            files[role] = SourceFile(str(found[0]))
        elif role in CELEBA_REQUIRED:
            raise ConfigError(
                f"config key '{key}.directory': {directory} holds none of {', '.join(names)}; "
                f"name the {role} file with 'files.{role}'")
    return files


def _spatial_files(name: str, kind: str, spec: dict, raw: str) -> dict[str, SourceFile]:
    files: dict[str, SourceFile] = {}
    taken: dict[str, str] = {}
    for key, role in SPATIAL_KEYS[kind].items():
        value = spec.get(key)
        if value is None:
            continue
        if isinstance(value, dict):
            url, checksum = str(value["url"]), value.get("checksum")
        else:
            url, checksum = str(value), None
        if key == "annotation" or (not is_url(url) and not checksum):
            files[role] = SourceFile(url)  # read where it is
            continue
        fname = _file_name(url)
        if fname in taken:
            raise ConfigError(f"config key 'datasets.{name}.source.{kind}.{key}': file name '{fname}' "
                              f"is also the name of '{taken[fname]}'; the downloads would overwrite "
                              f"each other")
        taken[fname] = key
        files[role] = SourceFile(f"{raw}/download/{fname}", url, checksum)
    return files


def downloads(config: dict) -> dict[str, dict[str, SourceFile]]:
    """Dataset -> {path under ``<results>/<dataset>/raw/`` -> :class:`SourceFile`} of every file
    the download rule fetches."""
    out: dict[str, dict[str, SourceFile]] = {}
    for name, dataset in config["datasets"].items():
        raw = f"{config['results']}/{name}/raw/"
        fetched = {f.path[len(raw):]: f for f in source_files(name, dataset, config["results"]).values()
                   if f.fetched}
        if fetched:
            out[name] = fetched
    return out


def image_folder(files: dict[str, SourceFile], dataset: dict) -> str | None:
    """The folder of images whose content a manifest tracks: a user's image folder, or CelebA's
    images given as a folder (a zip is a file, tracked as it is); None otherwise."""
    kind = next(iter(dataset["source"]))
    if kind == "image_folder":
        return dataset["source"][kind]["images"]
    if kind == "celeba" and "images" in files and os.path.isdir(files["images"].path):
        return files["images"].path
    return None
