"""The manifest of a user's image folder: what reruns ``prepare_images`` when an image changes.

A folder given to Snakemake as an input counts only by its own modification time,
which does not change when an image inside it is rewritten in place. So, while
the DAG is built, the Snakefile calls :func:`write_image_manifest`: it lists the
images the label table names (path in the folder, size in bytes, modification
time in ns) and writes ``results/<dataset>/raw/image_manifest.tsv`` only when the
listing differs from the file already there. Its modification time (what
Snakemake compares, with or without its ``.snakemake`` records) therefore changes
exactly when an image, the set of images, the folder or the table's path
changes; ``prepare_images`` takes it as an input. An image replaced by another of
the same size and the same modification time (``cp -p``) goes unnoticed.

Light on purpose (standard library only): it runs on every DAG build.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..artifacts import Provenance, provenance_path, write_text_atomic
from ..errors import ArtifactError, InputDataError
from .label_table import read_label_table, resolve_images

FORMAT = "csm.image-manifest"
_TITLE = f"# {FORMAT} 1: the images the label table names, written when the DAG is built"
_FOLDER_TITLE = f"# {FORMAT} 1: the images of a folder, written when the DAG is built"
#: File name suffixes of the images in a folder of region masks (``image_folder.masks``).
MASK_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp")


def manifest_text(image_dir: str | os.PathLike, labels: str | os.PathLike) -> str:
    """The manifest of ``image_dir`` as it is now: a title, the folder and the table (JSON strings),
    then ``name<TAB>size<TAB>mtime_ns`` of every image the table names, sorted by name.

    Raises :class:`~concept_saliency.errors.InputDataError` for a bad table or a missing image.
    """
    table = read_label_table(labels)
    files = resolve_images(table, image_dir)
    lines = [_TITLE,
             f"# images: {json.dumps(os.path.abspath(image_dir))}",
             f"# labels: {json.dumps(os.path.abspath(labels))}",
             "name\tsize\tmtime_ns"]
    for name, path in sorted(zip(table.images, files)):
        stat = path.stat()  # follows a symbolic link: its target's edits count
        lines.append(f"{name}\t{stat.st_size}\t{stat.st_mtime_ns}")
    return "\n".join(lines) + "\n"


def write_image_manifest(image_dir: str | os.PathLike, labels: str | os.PathLike,
                         manifest: str | os.PathLike) -> str:
    """Write ``manifest`` (atomically, with its provenance record) if its content would change;
    returns its path. An unchanged manifest keeps its modification time."""
    return _write_if_changed(Path(manifest), manifest_text(image_dir, labels),
                             {"images": str(image_dir)}, {"labels": str(labels)})


def write_folder_manifest(folder: str | os.PathLike, manifest: str | os.PathLike,
                          suffixes=(".jpg", ".jpeg", ".png")) -> str:
    """The same for a folder of images read whole (CelebA's ``img_align_celeba/``): every file
    with one of ``suffixes`` under ``folder``, at any depth; returns the manifest's path."""
    paths = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        paths += [Path(root) / name for name in sorted(files) if name.lower().endswith(suffixes)]
    return _write_folder_listing(Path(folder), paths, Path(manifest))


def mask_files(folder: str | os.PathLike) -> list[tuple[str, Path]]:
    """``(region, file)`` of every mask of a masks folder (``image_folder.masks``): each
    subfolder (a link to one too) is a region, and every file of :data:`MASK_SUFFIXES` under it
    at any depth (links to folders inside it not followed) one of its masks; hidden files and
    folders (``.x``: a Mac's ``._x.png``) left out. The files directly in ``folder`` are
    returned with region ``""``. Sorted; the packing and the manifest list the same files."""
    folder = Path(folder)
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            if entry.suffix.lower() in MASK_SUFFIXES:
                found.append(("", entry))
            continue
        for root, dirs, filenames in os.walk(entry):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found += [(entry.name, Path(root) / name) for name in sorted(filenames)
                      if not name.startswith(".") and Path(name).suffix.lower() in MASK_SUFFIXES]
    return found


def write_mask_manifest(folder: str | os.PathLike, manifest: str | os.PathLike) -> str:
    """The manifest of a masks folder (:func:`mask_files`), written as the image folder's is;
    returns its path."""
    return _write_folder_listing(Path(folder), [path for _, path in mask_files(folder)], Path(manifest))


def _write_folder_listing(folder: Path, paths: list[Path], manifest: Path) -> str:
    """The manifest of ``paths`` inside ``folder`` (name in the folder, size, modification time),
    written if it would change (:func:`_write_if_changed`); returns its path."""
    lines = [_FOLDER_TITLE, f"# images: {json.dumps(os.path.abspath(folder))}", "name\tsize\tmtime_ns"]
    for path in paths:
        stat = path.stat()
        lines.append(f"{path.relative_to(folder).as_posix()}\t{stat.st_size}\t{stat.st_mtime_ns}")
    return _write_if_changed(manifest, "\n".join(lines) + "\n", {"images": str(folder)}, {})


def _write_if_changed(manifest: Path, text: str, parameters: dict, inputs: dict) -> str:
    """Write ``manifest`` (atomically, with its provenance record) if its content would change."""
    try:
        current = manifest.read_text()
    except (OSError, UnicodeDecodeError):
        current = None
    try:
        if current != text:
            write_text_atomic(manifest, text)
        if current != text or not provenance_path(manifest).exists():
            Provenance("image_manifest", parameters, inputs).write(manifest, FORMAT)
    except OSError as exc:
        raise InputDataError(f"{manifest}: cannot write the image folder manifest ({exc.strerror}); the "
                             f"results folder must be writable") from None
    return str(manifest)


def manifest_folder(manifest: str | os.PathLike) -> str:
    """The folder a manifest lists (its second line)."""
    try:
        title, images = Path(manifest).read_text().splitlines()[:2]
        if title not in (_TITLE, _FOLDER_TITLE) or not images.startswith("# images: "):
            raise ValueError
        return json.loads(images[len("# images: "):])
    except (OSError, ValueError):
        raise ArtifactError(f"{manifest}: not an image folder manifest of this version; delete it (the next "
                            f"run writes it again)") from None
