"""Spot annotations: the region (layer, cluster, domain) each spot of a spatial dataset lies in.

An annotation is a small table, spot and region, from wherever people keep one: a TSV written
by hand or by pandas, Space Ranger's ``clusters.csv`` and Loupe Browser's exports (``.csv``),
an R ``write.table`` (quoted, its header one field short because the row names have none).

- :func:`read_annotation_table`: its rows, as written (a header line is optional);
- :func:`annotated_regions`: region -> rows, read before the count matrix is (the workflow's
  ``regions: all`` decides its concepts from it when it builds the DAG);
- :func:`read_spot_annotation`: the region of each spot of the data. Spots match by name (a
  Visium barcode), by their ``XxY`` position (R's ``X`` prefix allowed: ``X16.92x9.015``), by
  the position of ``x`` and ``y`` columns beside a name the data do not use (MERINGUE's and
  STexampleData's mouse olfactory bulb name its spots by barcode, ``ACAACTATGGGTTGGCGG``, with
  the position apart, ``16.001``, ``16.036``), or, where the annotation gives whole array
  positions (``17x9``) and the data the positions the ST pipeline measured (``16.92x9.015``),
  by the nearest whole position when no two spots share it.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputDataError

log = logging.getLogger(__name__)

#: a spot named by its array position, ``XxY``, with R's ``X`` prefix of a mangled name allowed
_POSITION = re.compile(r"^X?(-?\d+(?:\.\d+)?)x(-?\d+(?:\.\d+)?)$")

#: region values that mean "not annotated" (pandas' and R's missing values)
MISSING = frozenset({"", "NA", "N/A", "NaN", "nan", "NAN", "<NA>", "#N/A", "null", "NULL", "None", "n/a"})

#: header names of a region column (lower case), looked for when a table has more than two
#: columns (``annot``: MERINGUE's; ``layer_guess*``, ``spatiallibd``: spatialLIBD's)
REGION_HEADERS = ("region", "layer", "ground_truth", "annotation", "annot", "cluster", "domain", "label",
                  "layer_guess_reordered", "layer_guess", "spatiallibd")

#: header names (lower case) of a spot's position on the array, x then y (``x``, ``y``: the
#: ``pos`` of MERINGUE and the spatial coordinates of STexampleData)
POSITION_HEADERS = (("x", "y"), ("pos_x", "pos_y"), ("x_coord", "y_coord"), ("coord_x", "coord_y"),
                    ("array_x", "array_y"), ("spot_x", "spot_y"))

#: first-field header names of a spot column (lower case), to tell a header line from a spot
SPOT_HEADERS = frozenset({"spot", "spots", "barcode", "barcodes", "barcode_id", "spot_id", "id", "name", "cell",
                          "voxel", ""})


@dataclass
class AnnotationTable:
    names: list[str]    # spot as written
    regions: list[str]  # '' where not annotated
    lines: list[int]    # 1-based line of each row in the file
    positions: list[tuple[float, float] | None]  # from x and y columns; None where there are none


def _sep(path: Path, text: str) -> str:
    """Comma for a ``.csv``; otherwise tab, unless the first two lines hold no tab outside quotes:
    then comma, or space (R's ``write.table`` by default), whichever they hold."""
    if path.suffix.lower() == ".csv":
        return ","
    head = "\n".join([line for line in text.splitlines() if line.strip()][:2])
    unquoted = re.sub(r'"[^"]*"', "", head)
    return next((sep for sep in ("\t", ",", " ") if sep in unquoted), "\t")


def _position(name: str) -> tuple[float, float] | None:
    m = _POSITION.match(name)
    return (float(m.group(1)), float(m.group(2))) if m else None


def read_annotation_table(path: str | os.PathLike, spots: list[str] | None = None) -> AnnotationTable:
    """The rows of a spot annotation: comma-separated when the name ends in ``.csv``, else
    tab-separated, or, where its first two lines hold no tab, comma- or space-separated (R's
    ``write.table``); quotes as csv and R write them; a header line optional. It is a header when it
    is one field short of the next line (R's ``write.table``), or when its first field is
    neither a spot of ``spots`` (when given) nor a position, and names a spot column
    (``spot``, ``barcode``, empty, ...) or a region column (below), or (``spots`` given) is no
    spot of them at all.

    The spot is the first column; the region the second, or, when a header names more than two
    columns, the first of them called ``region``, ``layer``, ``ground_truth``, ``annotation``,
    ``annot``, ``cluster``, ``domain``, ``label``, ``layer_guess_reordered``, ``layer_guess`` or
    ``spatialLIBD`` (any case). A header's ``x`` and ``y`` columns (or ``pos_x``/``pos_y``,
    ``x_coord``/``y_coord``, ...: :data:`POSITION_HEADERS`) give each row's position. Refused:
    an unreadable file, a line with fewer fields than the columns read (space-separated: another
    number of fields than the header's, or two without one), a position that is not a number."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
        sep = _sep(path, text)
        rows = [(k + 1, [f.strip() for f in r])
                for k, r in enumerate(csv.reader(io.StringIO(text), delimiter=sep, skipinitialspace=sep == " "))]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputDataError(f"{path}: cannot read the spot annotation ({exc})") from None
    rows = [(line, r) for line, r in rows if any(r)]
    if not rows:
        raise InputDataError(f"{path}: the spot annotation is empty")
    known = set(spots or ())
    first = rows[0][1]
    short = len(rows) > 1 and len(first) == len(rows[1][1]) - 1
    name = first[0]
    if short:
        header = [""] + first  # R: no field for the row names
    elif name in known or _position(name) is not None:
        header = None
    elif name.lower() in SPOT_HEADERS or spots is not None \
            or any(f.lower() in REGION_HEADERS for f in first[1:]):
        header = first
    else:
        header = None
    body = rows[1:] if header is not None else rows
    if sep == " ":  # an unquoted name with a space would shift the columns: refuse, do not guess
        width = len(header) if header is not None else 2
        line, r = next(((line, r) for line, r in body if len(r) != width), (None, None))
        if line is not None:
            raise InputDataError(f"{path}: line {line} has {len(r)} space-separated field(s), expected "
                                 f"{width}; quote names that hold spaces, or separate the columns by tabs")
    column, xy = 1, None
    if header is not None and len(header) > 2:
        lower = [h.lower() for h in header]
        column = next((1 + lower[1:].index(h) for h in REGION_HEADERS if h in lower[1:]), 1)
        xy = next(((1 + lower[1:].index(x), 1 + lower[1:].index(y)) for x, y in POSITION_HEADERS
                   if x in lower[1:] and y in lower[1:]), None)
        if column == 1 and xy is not None and 1 in xy:
            raise InputDataError(f"{path}: no column names the regions (its columns: "
                                 f"{', '.join(header[1:])}); name it 'region'")
    tab = {",": "comma", " ": "space"}.get(sep, "tab")
    wanted = "spot, region" + (f", {header[xy[0]]}, {header[xy[1]]}" if xy else "")
    names, regions, lines, positions = [], [], [], []
    for line, r in body:
        if len(r) <= max((column, *(xy or ()))):
            raise InputDataError(f"{path}: line {line} has {len(r)} field(s); expected {tab}-separated "
                                 f"columns: {wanted}")
        region = r[column]
        names.append(r[0])
        regions.append("" if region in MISSING else region)
        lines.append(line)
        positions.append(_position_of(path, line, header, r, xy) if xy else None)
    if column != 1:
        log.info("%s: regions read from column %d ('%s')", path, column + 1, header[column])
    if xy:
        log.info("%s: positions read from columns '%s' and '%s'", path, header[xy[0]], header[xy[1]])
    return AnnotationTable(names, regions, lines, positions)


def _position_of(path: Path, line: int, header: list[str], row: list[str],
                 xy: tuple[int, int]) -> tuple[float, float] | None:
    """A row's position from its x and y fields (None where both are missing)."""
    fields = [row[k] for k in xy]
    if all(f in MISSING for f in fields):
        return None
    try:
        return float(fields[0]), float(fields[1])
    except ValueError:
        bad = next(k for k, f in zip(xy, fields) if not _is_number(f))
        raise InputDataError(f"{path}: line {line}: {header[bad]} '{row[bad]}' is not a number") from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def annotated_regions(path: str | os.PathLike) -> dict[str, int]:
    """Region -> how many rows of the annotation give it (unannotated rows left out), in the
    order the regions first appear."""
    table = read_annotation_table(path)
    return dict(Counter(r for r in table.regions if r))


def read_spot_annotation(path: str | os.PathLike, spots: list[str]) -> list[str]:
    """The region of each spot of ``spots`` (``''`` where the annotation does not give one).

    Refused: no spot of the annotation among ``spots``, and two lines giving one spot (by
    name or position, the name's or the ``x`` and ``y`` columns') two different regions (the
    same region twice is accepted; a line without a region says nothing)."""
    table = read_annotation_table(path, spots)
    by_name = {s: i for i, s in enumerate(spots)}
    positions = [_position(s.strip()) for s in spots]
    by_position = {(round(p[0], 2), round(p[1], 2)): i for i, p in enumerate(positions) if p}
    whole = Counter((round(p[0]), round(p[1])) for p in positions if p)
    by_whole = {(round(p[0]), round(p[1])): i for i, p in enumerate(positions)
                if p and whole[(round(p[0]), round(p[1]))] == 1}

    def spot_at(p: tuple[float, float] | None) -> tuple[int | None, bool]:
        """The spot at a position, and whether it took the nearest whole position to find it."""
        if p is None:
            return None, False
        i = by_position.get((round(p[0], 2), round(p[1], 2)))
        if i is None and p[0].is_integer() and p[1].is_integer():
            i = by_whole.get((int(p[0]), int(p[1])))
            return i, i is not None
        return i, False

    def spot_of(name: str, position: tuple[float, float] | None) -> tuple[int | None, bool]:
        """The spot a row gives: by its name, the position its name holds, or its x and y."""
        if name in by_name:
            return by_name[name], False
        found = spot_at(_position(name))
        return found if found[0] is not None else spot_at(position)

    given: dict[int, tuple[str, int, str]] = {}  # spot -> (region, line, name as written)
    n_whole = 0
    for name, region, line, position in zip(table.names, table.regions, table.lines, table.positions):
        i, nearest = spot_of(name, position)
        if i is None or not region:
            continue
        if i in given and given[i][0] != region:
            earlier_region, earlier_line, earlier_name = given[i]
            same = "the same spot" if earlier_name == name else f"spot '{earlier_name}' (the same position)"
            raise InputDataError(f"{path}: line {line} gives spot '{name}' region '{region}', line "
                                 f"{earlier_line} gave {same} region '{earlier_region}'; give every "
                                 f"spot one region")
        if i not in given:
            n_whole += nearest
            given[i] = (region, line, name)
    if not given:
        example = next((n for n, r in zip(table.names, table.regions) if r), table.names[0] if table.names else "")
        hint = ("" if not by_position else ", by name or by the position of its columns 'x' and 'y'"
                if any(table.positions) else "; name them as it does, or give their positions in columns "
                "'x' and 'y'")
        raise InputDataError(f"{path}: none of its {len(table.names)} spots (e.g. '{example}') is a "
                             f"spot of the count matrix (e.g. '{spots[0]}'){hint}")
    if n_whole:
        log.info("%s: %d spots matched by their nearest whole array position", path, n_whole)
    out = [given[i][0] if i in given else "" for i in range(len(spots))]
    log.info("%s: %d of %d spots annotated with %d regions", path, len(given), len(spots),
             len({r for r in out if r}))
    return out
