"""The attribute table of an image folder, read one way everywhere.

The Snakefile reads it while it builds the DAG (attribute names become concept
names, hence file names ``figures/<concept>.png`` and HDF5 group names) and the
``prepare_images`` stage reads it to pack the samples: both call
:func:`read_label_table`, so both see the same names and values. Standard
library only (no pandas, no numpy): importing this module costs nothing.

The table (see :func:`read_label_table` for the exact rules): a header row,
then one row per image; the first column names the image file relative to the
images folder, every other column is a binary attribute coded -1/1 or 0/1.
"""

from __future__ import annotations

import csv
import functools
import io
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import InputDataError

#: Separator by file name suffix; any other suffix (``.txt`` too): the separator the header uses.
SEPARATORS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
_SEPARATOR_NAMES = {",": "commas", "\t": "tabs"}
#: Longest attribute name, in UTF-8 bytes: ``figures/<name>.png`` and its temporary name
#: ``.<name>.tmp-<pid>.png`` must fit the 255-byte file name limit of common file systems.
MAX_NAME_BYTES = 200
#: -1, 0 or 1, optionally signed, optionally with a decimal point and zeros ("1.0", as R or pandas
#: write a numeric column); nothing else ("yes", "TRUE", "NA", "" are refused).
_VALUE = re.compile(r"([+-]?)([01])(?:\.0*)?")
#: Characters Snakemake reads as wildcards in a file name, and path separators.
_FORBIDDEN_IN_NAMES = {"/": "a '/'", "\\": "a '\\'", "{": "a '{'", "}": "a '}'"}


@dataclass(frozen=True)
class LabelTable:
    """A parsed attribute table.

    ``images`` are the image paths as normalised relative POSIX paths (``./a//b.png`` ->
    ``a/b.png``), ``ids`` the sample id of each (:func:`sample_id`), ``lines`` the line of each
    row in the file, ``positive[i][j]`` whether image ``i`` has attribute ``j`` (value 1).
    """

    path: str
    image_column: str
    attributes: tuple[str, ...]
    images: tuple[str, ...]
    ids: tuple[str, ...]
    lines: tuple[int, ...]
    positive: tuple[tuple[bool, ...], ...]


def sample_id(image: str) -> str:
    """The sample id of an image: its path relative to the images folder without its last suffix.

    ``f0.png`` -> ``f0``, ``a/x.png`` -> ``a/x``, ``x.tar.png`` -> ``x.tar``. Ids name samples in
    the sample store and in ``explain.ids``; two images with one id are refused.
    """
    path = PurePosixPath(image)
    return str(path.with_suffix("")) if path.suffix else image


def read_label_table(path: str | os.PathLike) -> LabelTable:
    """Read an attribute table; refuse anything that would be read one way here and another elsewhere.

    - Text: UTF-8, with or without a byte-order mark (Excel's "CSV UTF-8"); LF, CRLF or CR line ends.
    - Separator: commas for ``.csv``, tabs for ``.tsv``/``.tab``; for another suffix (``.txt``) tabs if
      the header holds one, else commas. A ``.csv`` whose header is tab-separated (or a ``.tsv`` whose
      header is comma-separated) is refused: rename it.
    - Fields: CSV quoting (``"image","Smiling"``, as R and Excel write it); spaces around a field are
      dropped (``image, Smiling``). Blank lines and lines of empty fields are skipped; trailing
      columns with no name and no values (Excel's stray separators) are dropped.
    - Attribute names: see :func:`check_attribute_name`; two names equal but for case or Unicode
      normalisation are refused (one file on macOS and Windows).
    - Values: -1, 0 or 1 (``1.0``, ``+1`` too); a column holding both -1 and 0 is refused.
    - Image names: relative paths inside the images folder (see :func:`image_path`); each image once,
      each sample id once.

    Raises :class:`InputDataError`, one line naming the file, the line and the column.
    """
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as exc:
        raise InputDataError(f"{path}: cannot read the attribute table ({exc.strerror})") from None
    return _read_cached(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _read_cached(path: str, mtime_ns: int, size: int) -> LabelTable:
    """The table, parsed once per version of the file (the DAG build asks for it more than once)."""
    text = _read_text(Path(path))
    separator = _separator(path, text)
    rows = _records(text, separator, path)
    if not rows:
        raise InputDataError(f"{path}: the table is empty; it needs a header row (image column, then "
                             f"attribute names) and one row per image")
    header_line, header = rows[0]
    attributes, width = _attribute_columns(header, header_line, rows[1:], separator, path)
    if len(rows) == 1:
        raise InputDataError(f"{path}: the table lists no images (only the header, line {header_line})")
    images, ids, lines, positive = [], [], [], []
    seen_image: dict[str, int] = {}
    seen_id: dict[str, tuple[int, str]] = {}
    codings = [_Coding(name) for name in attributes]
    for line, fields in rows[1:]:
        _check_width(fields, width, line, path)
        image = image_path(fields[0], f"{path}: line {line}")
        if image in seen_image:
            raise InputDataError(f"{path}: image '{image}' appears more than once (lines {seen_image[image]} "
                                 f"and {line}); keep one row per image")
        seen_image[image] = line
        sid = sample_id(image)
        if sid in seen_id:
            other_line, other = seen_id[sid]
            raise InputDataError(
                f"{path}: lines {other_line} and {line} give '{other}' and '{image}' the same sample id "
                f"'{sid}' (a sample id is the path without its suffix); rename one of the files")
        seen_id[sid] = (line, image)
        images.append(image)
        ids.append(sid)
        lines.append(line)
        positive.append(tuple(coding.read(v, image, line, path) for coding, v in zip(codings, fields[1:width])))
    return LabelTable(path, header[0], tuple(attributes), tuple(images), tuple(ids), tuple(lines),
                      tuple(positive))


def check_attribute_name(name: str, where: str) -> None:
    """Refuse an attribute name that cannot be a file name (``figures/<name>.png``), an HDF5 group
    name or a Snakemake target: empty, ``.`` or ``..``, with ``/``, ``\\``, ``{`` or ``}``, with
    control characters, or longer than :data:`MAX_NAME_BYTES` bytes in UTF-8. ``where`` starts the
    message (file and column)."""
    problem = None
    if not name:
        problem = "has no name"
    elif name in (".", ".."):
        problem = f"is named '{name}'"
    elif any(unicodedata.category(c) in ("Cc", "Cs") for c in name):
        problem = f"name {name!r} holds a control character"
    elif len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        problem = (f"name '{name[:40]}...' is {len(name.encode('utf-8'))} bytes long in UTF-8 "
                   f"(at most {MAX_NAME_BYTES})")
    else:
        bad = [what for char, what in _FORBIDDEN_IN_NAMES.items() if char in name]
        if bad:
            problem = f"name '{name}' holds {bad[0]}"
    if problem:
        raise InputDataError(f"{where} {problem}; attribute names become file names "
                             f"(figures/<attribute>.png): rename the column")


def image_path(name: str, where: str) -> str:
    """A table's image name as a normalised relative POSIX path inside the images folder.

    ``./a//b.png`` -> ``a/b.png``. Refused: an empty name, an absolute path, a ``..`` component
    (outside the folder), a backslash (write ``/`` between folders), control characters.
    Symbolic links inside the folder are followed (their targets may lie anywhere).
    """
    if not name:
        raise InputDataError(f"{where}: no image file name in the first column")
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise InputDataError(f"{where}: image name {name!r} holds a control character")
    if "\\" in name:
        raise InputDataError(f"{where}: image name '{name}' holds a '\\'; write '/' between folders")
    if name.startswith("/") or re.match(r"[A-Za-z]:", name):
        raise InputDataError(f"{where}: image name '{name}' is an absolute path; give it relative to "
                             f"the images folder")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InputDataError(f"{where}: image name '{name}' points outside the images folder ('..'); "
                             f"give it relative to the images folder")
    if not parts:
        raise InputDataError(f"{where}: image name '{name}' names no file")
    return "/".join(parts)


def resolve_images(table: LabelTable, image_dir: str | os.PathLike) -> list[Path]:
    """The file of every image of ``table`` inside ``image_dir``; refuses missing ones (one line
    naming the folder, the table, how many and the first with its line)."""
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise InputDataError(f"{image_dir}: the images folder does not exist (or is not a folder)")
    files = [image_dir / name for name in table.images]
    missing = [(name, line) for name, line, f in zip(table.images, table.lines, files) if not f.is_file()]
    if missing:
        name, line = missing[0]
        raise InputDataError(f"{image_dir}: {len(missing)} image(s) named in {table.path} are missing, "
                             f"e.g. '{name}' (line {line})")
    return files


# ------------------------------------------------------------------ parsing


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputDataError(f"{path}: cannot read the attribute table ({exc.strerror})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise InputDataError(f"{path}: line {line}: not UTF-8 text (byte {data[exc.start]:#04x}); save the "
                             f"table as UTF-8 (Excel: 'CSV UTF-8')") from None


def _separator(path: str, text: str) -> str:
    first = re.split(r"\r\n|\r|\n", text, maxsplit=1)[0]
    expected = SEPARATORS.get(Path(path).suffix.lower())
    if expected is None:
        return "\t" if "\t" in first else ","
    other = "," if expected == "\t" else "\t"
    if expected not in first and other in first:
        suffix = ".tsv" if other == "\t" else ".csv"
        raise InputDataError(
            f"{path}: line 1 is separated by {_SEPARATOR_NAMES[other]}, but a {Path(path).suffix} table is "
            f"separated by {_SEPARATOR_NAMES[expected]}; rename the file to {suffix}")
    return expected


def _records(text: str, separator: str, path: str) -> list[tuple[int, list[str]]]:
    """(line number, stripped fields) of every non-blank record; the line is where the record starts."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=separator, skipinitialspace=True,
                        strict=True)
    rows = []
    start = 1
    try:
        for fields in reader:
            fields = [f.strip() for f in fields]
            if any(fields):
                rows.append((start, fields))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise InputDataError(f"{path}: line {reader.line_num}: cannot read the row ({exc})") from None
    return rows


def _attribute_columns(header: list[str], header_line: int, rows, separator: str,
                       path: str) -> tuple[list[str], int]:
    """The attribute names (checked) and the number of columns used (trailing empty ones dropped)."""
    width = len(header)
    while width > 1 and not header[width - 1]:
        width -= 1
    for line, fields in rows:  # a nameless trailing column must hold nothing
        for k in range(width, min(len(fields), len(header))):
            if fields[k]:
                raise InputDataError(f"{path}: line {line}: column {k + 1} holds {fields[k]!r} but has no "
                                     f"name in the header (line {header_line}); name it or remove the values")
    attributes = header[1:width]
    if not attributes:
        raise InputDataError(
            f"{path}: expected a header row with an image column and at least one attribute column, "
            f"separated by {_SEPARATOR_NAMES[separator]}")
    if all(_VALUE.fullmatch(a) for a in attributes) and PurePosixPath(header[0]).suffix:
        raise InputDataError(f"{path}: line {header_line} looks like a data row ('{header[0]}', then values); "
                             f"the table needs a header row: the image column's name, then attribute names")
    seen: dict[str, int] = {}
    for k, name in enumerate(attributes, start=2):
        check_attribute_name(name, f"{path}: line {header_line}, column {k}")
        key = unicodedata.normalize("NFC", name).casefold()
        if key in seen:
            first = attributes[seen[key] - 2]
            same = "are both named" if first == name else "differ only in case or accents:"
            raise InputDataError(
                f"{path}: line {header_line}: columns {seen[key]} and {k} {same} '{first}'"
                + ("" if first == name else f" and '{name}'")
                + "; each attribute needs its own name (they become file names)")
        seen[key] = k
    return attributes, width


def _check_width(fields: list[str], width: int, line: int, path: str) -> None:
    used = len(fields)
    while used > width and not fields[used - 1]:  # empty trailing fields (stray separators)
        used -= 1
    if used != width:
        raise InputDataError(f"{path}: line {line} has {used} field(s) but the header has {width}; "
                             f"give every image a value for every attribute")


class _Coding:
    """Reads one attribute column's values; a column coded -1/1 must not also hold 0 (nor 0/1
    hold -1): which value means "absent" would be a guess."""

    def __init__(self, attribute: str):
        self.attribute = attribute
        self.first = {"-1": None, "0": None}  # line of the first -1 and of the first 0

    def read(self, text: str, image: str, line: int, path: str) -> bool:
        match = _VALUE.fullmatch(text)
        if not match:
            raise InputDataError(f"{path}: line {line}, column '{self.attribute}', image '{image}': value "
                                 f"{text!r} is not -1, 0 or 1")
        sign, digit = match.groups()
        if digit == "1" and sign != "-":
            return True
        key = "-1" if digit == "1" else "0"
        self.first[key] = self.first[key] or line
        if self.first["-1"] and self.first["0"]:
            raise InputDataError(
                f"{path}: column '{self.attribute}' holds both -1 (line {self.first['-1']}) and 0 (line "
                f"{self.first['0']}); code each attribute -1/1 or 0/1")
        return False
