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
import math
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

#: header names of a region column (lower case), in order of preference, looked for when a table
#: has more than two columns (``annot``: MERINGUE's; ``manualannotation``, ``layer_guess*``,
#: ``spatiallibd``: spatialLIBD's, before its older ``Layer`` and 10x's ``Cluster``; clusters of
#: Seurat and scanpy last)
REGION_HEADERS = ("region", "ground_truth", "annot", "annotation", "manualannotation", "layer_guess_reordered",
                  "layer_guess", "spatiallibd", "layer", "domain", "cell_type", "celltype", "cluster", "label",
                  "seurat_clusters", "leiden", "louvain")

#: header names (lower case) of a spot's position on the array, x then y (``x``, ``y``: the
#: ``pos`` of MERINGUE and the spatial coordinates of STexampleData)
POSITION_HEADERS = (("x", "y"), ("pos_x", "pos_y"), ("x_coord", "y_coord"), ("coord_x", "coord_y"),
                    ("array_x", "array_y"), ("spot_x", "spot_y"))

#: first-field header names of a spot column (lower case), to tell a header line from a spot
SPOT_HEADERS = frozenset({"spot", "spots", "spot_name", "barcode", "barcodes", "barcode_id", "spot_id", "id", "name",
                          "cell", "voxel", ""})


@dataclass
class AnnotationTable:
    names: list[str]    # spot as written
    regions: list[str]  # '' where not annotated
    lines: list[int]    # 1-based line of each row in the file
    positions: list[tuple[float, float] | None]  # from x and y columns; None where there are none
    position_columns: tuple[str, str] | None = None  # the header's names of those columns


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
    ``write.table``); quotes as csv and R write them; a header line optional. The first line is
    a header when it is one field short of the next line (R's ``write.table``; not where it
    names the spot column and the next line starts with a spot: that line has a field too
    many), or when its first field is neither a spot of ``spots`` (when given) nor a position,
    and the line names a spot column (``spot``, ``barcode``, empty, ...) or a region column
    (below), or (``spots`` given) its first field is no spot of them at all.

    The spot is the first column; the region the second. With a header: the spot is the first
    column :data:`SPOT_HEADERS` names (else the first: R's row names), the region the column
    :data:`REGION_HEADERS` names first in its order (any case; else the one column left but
    unnamed row names or an index), a row's position its ``x`` and ``y`` columns (or ``pos_x`` and
    ``pos_y``, ...: :data:`POSITION_HEADERS`). Refused: an unreadable file, a quote left open
    over lines, a header and no rows, a line with fewer fields than the columns read or more
    than the header (space-separated without one: more than two), several columns that could
    hold the regions and none named for them, a region column with no value, a position that
    is not a finite number or half of one."""
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
    broken = next((line for line, r in rows if any("\n" in f for f in r)), None)
    if broken is not None:
        raise InputDataError(f"{path}: line {broken}: a quoted field runs on over the next lines (a quote "
                             f"left open?); close it")
    known = set(spots or ())
    first = _trimmed(rows[0][1])  # a separator at the end of a line adds no column
    named = SPOT_HEADERS - {""}
    # R's write.table: the header one field short (the row names have none); not where it names
    # the spot column and the next line starts with a spot and goes on with no spot (that line
    # has a field too many: a name with the separator in it)
    second = _trimmed(rows[1][1]) if len(rows) > 1 else []

    def is_spot(field: str) -> bool:
        return field in known or _position(field) is not None

    short = (len(first) == len(second) - 1
             and not (first[0].lower() in named and is_spot(second[0]) and not is_spot(second[1])))
    name = first[0]
    if short:
        header = [""] + first
    elif name in known or _position(name) is not None:
        header = None
    elif name.lower() in SPOT_HEADERS or spots is not None \
            or any(f.lower() in REGION_HEADERS or f.lower() in named for f in first):
        header = first
    else:
        header = None
    body = rows[1:] if header is not None else rows
    if not body:
        raise InputDataError(f"{path}: the spot annotation has a header line and no spots")
    _check_widths(path, sep, header, body)
    spot, column, xy = 0, 1, None
    if header is not None:
        lower = [h.lower() for h in header]
        if lower[0] not in named:  # row names, an index or the region first, a named spot column after
            spot = next((i for i, h in enumerate(lower) if h in named), 0)
        xy = next(((lower.index(x), lower.index(y)) for x, y in POSITION_HEADERS if x in lower and y in lower),
                  None)
        # the region: any column but the spot's, the position's and unnamed row names or index
        others = [i for i in range(len(header)) if i not in (spot, *(xy or ())) and (i or header[0])]
        column = next((i for h in REGION_HEADERS for i in others if lower[i] == h),
                      others[0] if len(others) == 1 else 1 if len(header) < 2 else None)
        if column is None:
            raise InputDataError(f"{path}: no column names the regions (its columns: "
                                 f"{', '.join(h or '(row names)' for h in header)}); name it 'region'")
    tab = {",": "comma", " ": "space"}.get(sep, "tab")
    wanted = "spot, region" + (f", {header[xy[0]]}, {header[xy[1]]}" if xy else "")
    names, regions, lines, positions = [], [], [], []
    for line, r in body:
        if len(r) <= max((spot, column, *(xy or ()))):
            raise InputDataError(f"{path}: line {line} has {len(r)} field(s); expected {tab}-separated "
                                 f"columns: {wanted}")
        region = r[column]
        names.append(r[spot])
        regions.append("" if region in MISSING else region)
        lines.append(line)
        positions.append(_position_of(path, line, header, r, xy) if xy else None)
    if not any(regions):
        what = f"its column '{header[column]}'" if header is not None else "its second column"
        raise InputDataError(f"{path}: {what} gives no spot a region (every value is missing)")
    if (spot, column) != (0, 1):
        log.info("%s: spots read from column %d, regions from column %d ('%s')", path, spot + 1, column + 1,
                 header[column])
    if xy:
        log.info("%s: positions read from columns '%s' and '%s'", path, header[xy[0]], header[xy[1]])
    return AnnotationTable(names, regions, lines, positions,
                           (header[xy[0]], header[xy[1]]) if xy else None)


def _trimmed(fields: list[str]) -> list[str]:
    """The fields of a row without the empty ones at its end."""
    n = len(fields)
    while n and not fields[n - 1]:
        n -= 1
    return fields[:n]


def _check_widths(path: Path, sep: str, header: list[str] | None, body: list) -> None:
    """Refuse a row with more fields than its header (or, space-separated without one, than two):
    a name with the separator in it, unquoted, shifts the columns after it. Empty trailing fields
    (a separator at the end of a line) do not count."""
    width = len(header) if header is not None else 2 if sep == " " else None
    if width is None:
        return
    for line, r in body:
        if (n := len(_trimmed(r))) > width:
            advice = ("quote names that hold spaces, or separate the columns by tabs" if sep == " " else
                      "quote names that hold the separator")
            raise InputDataError(f"{path}: line {line} has {n} {'space-separated ' if sep == ' ' else ''}"
                                 f"field(s), expected {width}; {advice}")


def _position_of(path: Path, line: int, header: list[str], row: list[str],
                 xy: tuple[int, int]) -> tuple[float, float] | None:
    """A row's position from its x and y fields (None where both are missing)."""
    fields = [row[k] for k in xy]
    missing = [f in MISSING for f in fields]
    if all(missing):
        return None
    for k, f, gone in zip(xy, fields, missing):
        try:
            ok = not gone and math.isfinite(float(f))
        except ValueError:
            ok = False
        if not ok:
            raise InputDataError(f"{path}: line {line}: {header[k]} '{row[k]}' is not a number; give both "
                                 f"{header[xy[0]]} and {header[xy[1]]}, or neither")
    return float(fields[0]), float(fields[1])


def annotated_regions(path: str | os.PathLike) -> dict[str, int]:
    """Region -> how many rows of the annotation give it (unannotated rows left out), in the
    order the regions first appear."""
    table = read_annotation_table(path)
    return dict(Counter(r for r in table.regions if r))


def read_spot_annotation(path: str | os.PathLike, spots: list[str]) -> list[str]:
    """The region of each spot of ``spots`` (``''`` where the annotation does not give one).

    Refused: no spot of the annotation among ``spots``; two lines giving one spot (by name or
    position, the name's or the ``x`` and ``y`` columns') two different regions (the same region
    twice is accepted; a line without a region says nothing); a line naming one spot of the
    data and giving the position of another. Rows that name no spot of the data (spots filtered
    out, another section's) are left out with a warning."""
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

    def spot_of(name: str, position: tuple[float, float] | None, line: int) -> tuple[int | None, bool]:
        """The spot a row gives: by its name, the position its name holds, or its x and y."""
        if name in by_name:
            i, at = by_name[name], spot_at(position)[0]
            if at is not None and at != i:
                raise InputDataError(f"{path}: line {line} names spot '{name}' and gives the position of spot "
                                     f"'{spots[at]}'; correct one of them")
            return i, False
        found = spot_at(_position(name))
        return found if found[0] is not None else spot_at(position)

    given: dict[int, tuple[str, int, str]] = {}  # spot -> (region, line, name as written)
    n_whole, unmatched = 0, []
    for name, region, line, position in zip(table.names, table.regions, table.lines, table.positions):
        i, nearest = spot_of(name, position, line)
        if i is None and region:
            unmatched.append((line, name))
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
    x, y = table.position_columns or ("x", "y")
    if not given:
        example = next((n for n, r in zip(table.names, table.regions) if r), table.names[0])
        hint = ("" if not by_position else f", by name or by the position of its columns '{x}' and '{y}'"
                if table.position_columns else "; name them as it does, or give their positions in columns "
                "'x' and 'y'")
        raise InputDataError(f"{path}: none of its {len(table.names)} spots (e.g. '{example}') is a "
                             f"spot of the count matrix (e.g. '{spots[0]}'){hint}")
    if unmatched:
        log.warning("%s: %d of its annotated rows name no spot of the data, left out (first: line %d, '%s')",
                    path, len(unmatched), *unmatched[0])
    if n_whole:
        log.info("%s: %d spots matched by their nearest whole array position", path, n_whole)
    out = [given[i][0] if i in given else "" for i in range(len(spots))]
    log.info("%s: %d of %d spots annotated with %d regions", path, len(given), len(spots),
             len({r for r in out if r}))
    return out
