"""Spot annotations as people write them: every form must give each spot its region, or say why not.

The reference is the layer annotation of MOB replicate 11 in tests/data (real spot names, five
layers); each test writes it in another form and reads it back against the same spots.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from concept_saliency.data.spot_annotation import annotated_regions, read_spot_annotation
from concept_saliency.errors import InputDataError
from helpers import REPO

LAYERS = REPO / "tests" / "data" / "mob_rep11_layers.tsv"


@pytest.fixture(scope="module")
def reference() -> tuple[list[str], list[str]]:
    rows = [line.split("\t") for line in LAYERS.read_text().splitlines()[1:]]
    return [r[0] for r in rows], [r[1] for r in rows]


def round_trip(tmp_path, name: str, text: str, spots: list[str]) -> list[str]:
    path = tmp_path / name
    path.write_text(text)
    return read_spot_annotation(path, spots)


def test_the_reference_reads_as_written(reference):
    spots, regions = reference
    assert read_spot_annotation(LAYERS, spots) == regions
    assert annotated_regions(LAYERS) == {"GL": 45, "MCL": 49, "OPL": 52, "GCL": 68, "ONL": 46}


def test_r_write_table_quoted_with_a_header_one_field_short(reference, tmp_path):
    # write.table(data.frame(layer = ...), sep = "\t"): row names have no header field
    spots, regions = reference
    text = '"layer"\n' + "".join(f'"{s}"\t"{r}"\n' for s, r in zip(spots, regions))
    assert round_trip(tmp_path, "layers.tsv", text, spots) == regions
    path = tmp_path / "layers.tsv"
    assert annotated_regions(path) == annotated_regions(LAYERS)


def test_r_write_csv_with_row_names_and_long_labels(reference, tmp_path):
    # write.csv(...): header "","layer"; labels as MERINGUE writes the bulb's layers
    spots, regions = reference
    long = {"GCL": "1: Granular Cell Layer", "MCL": "2: Mitral Cell Layer", "OPL": "3: Outer Plexiform Layer",
            "GL": "4: Glomerular Layer", "ONL": "5: Olfactory Nerve Layer"}
    text = '"","layer"\n' + "".join(f'"{s}","{long[r]}"\n' for s, r in zip(spots, regions))
    assert round_trip(tmp_path, "layers.csv", text, spots) == [long[r] for r in regions]


def test_spot_names_mangled_by_r_and_a_byte_order_mark(reference, tmp_path):
    spots, regions = reference
    text = "\ufeffspot\tregion\n" + "".join(f"X{s}\t{r}\n" for s, r in zip(spots, regions))
    assert round_trip(tmp_path, "layers.tsv", text, spots) == regions


def test_whole_array_positions_match_the_measured_ones(reference, tmp_path):
    # an annotation on the array's nominal positions (17x9) of spots measured at 16.92x9.015
    spots, regions = reference
    whole = [f"{round(float(s.split('x')[0]))}x{round(float(s.split('x')[1]))}" for s in spots]
    assert whole != spots and len(set(whole)) == len(whole)
    text = "".join(f"{w}\t{r}\n" for w, r in zip(whole, regions))
    assert round_trip(tmp_path, "layers.tsv", text, spots) == regions
    # two spots of the data nearest one whole position: that position names neither
    crowded = ["1.1x1.0", "0.9x1.0", "3.0x3.0"]
    assert round_trip(tmp_path, "few.tsv", "1x1\tA\n3x3\tB\n", crowded) == ["", "", "B"]


def test_a_region_column_named_in_a_wider_table(reference, tmp_path):
    spots, regions = reference
    text = "barcode,x,y,Layer,n_counts\n" + "".join(
        f"{s},{s.split('x')[0]},{s.split('x')[1]},{r},100\n" for s, r in zip(spots, regions))
    assert round_trip(tmp_path, "layers.csv", text, spots) == regions
    # read before the count matrix is (regions: all), by the same column
    assert annotated_regions(tmp_path / "layers.csv") == annotated_regions(LAYERS)
    (tmp_path / "layers.csv").write_text(text.replace("barcode,", "cell_id,", 1))
    assert annotated_regions(tmp_path / "layers.csv") == annotated_regions(LAYERS)


def test_missing_values_leave_a_spot_unannotated(reference, tmp_path):
    spots, regions = reference
    gaps = {0: "NA", 1: "", 2: "nan"}
    text = "spot\tregion\n" + "".join(f"{s}\t{gaps.get(k, r)}\n" for k, (s, r) in enumerate(zip(spots, regions)))
    got = round_trip(tmp_path, "layers.tsv", text, spots)
    assert got[:3] == ["", "", ""] and got[3:] == regions[3:]
    # a line without a region says nothing, even about a spot another line annotates
    text += f"{spots[5]}\tNA\n"
    assert round_trip(tmp_path, "layers.tsv", text, spots)[5] == regions[5]


def test_annotations_that_cannot_be_read_say_where(reference, tmp_path):
    spots, regions = reference
    with pytest.raises(InputDataError, match=r"short.tsv: line 3 has 1 field\(s\); expected tab-separated"):
        round_trip(tmp_path, "short.tsv", f"{spots[0]}\tGCL\n{spots[1]}\tGCL\n{spots[2]}\n", spots)
    with pytest.raises(InputDataError, match="empty.tsv: the spot annotation is empty"):
        round_trip(tmp_path, "empty.tsv", "\n\n", spots)
    with pytest.raises(InputDataError, match=r"none of its 2 spots \(e.g. '99x99'\)"):
        round_trip(tmp_path, "other.tsv", "99x99\tA\n98x98\tB\n", spots)
    whole = f"{round(float(spots[4].split('x')[0]))}x{round(float(spots[4].split('x')[1]))}"
    with pytest.raises(InputDataError, match=f"line 2 gives spot '{whole}' region 'B', line 1 gave "
                                             f"spot '{spots[4]}' \\(the same position\\) region 'A'"):
        round_trip(tmp_path, "twice.tsv", f"{spots[4]}\tA\n{whole}\tB\n", spots)


def barcodes(n: int) -> list[str]:
    """n distinct ST-style spot barcodes (18 bases), as MERINGUE names the bulb's spots."""
    rng = np.random.default_rng(11)
    names = {"".join(rng.choice(list("ACGT"), 18)) for _ in range(2 * n)}
    return sorted(names)[:n]


def test_spots_named_by_barcode_match_by_their_x_and_y_columns(reference, tmp_path):
    # MERINGUE's mOB: spots named by barcode (ACAACTATGGGTTGGCGG), positions in mOB$pos
    # (x 16.001, y 16.036: the count matrix's 16.001x16.036), layers in mOB$annot, some spots
    # unannotated. write.csv(data.frame(annot = mOB$annot, mOB$pos[names(mOB$annot), ])):
    spots, regions = reference
    long = {"GCL": "1: Granular Cell Layer", "MCL": "2: Mitral Cell Layer", "OPL": "3: Outer Plexiform Layer",
            "GL": "4: Glomerular Layer", "ONL": "5: Olfactory Nerve Layer"}
    codes = barcodes(len(spots))
    xy = [s.split("x") for s in spots]
    kept = range(3, len(spots))  # the first three spots have no annotation
    text = '"","annot","x","y"\n' + "".join(f'"{codes[k]}","{long[regions[k]]}",{xy[k][0]},{xy[k][1]}\n'
                                             for k in kept)
    got = round_trip(tmp_path, "mob_annot.csv", text, spots)
    assert got == ["", "", ""] + [long[r] for r in regions[3:]]
    assert annotated_regions(tmp_path / "mob_annot.csv") == {
        long[r]: n for r, n in Counter(regions[3:]).items()}
    # STexampleData's ST_mouseOB: colData and spatialCoords written by pandas, layers
    # simplified, NA where MERINGUE has none; the region column found by its name
    short = {"GCL": "granular_cell", "MCL": "mitral_cell", "OPL": "outer_plexiform", "GL": "glomerular",
             "ONL": "olfactory_nerve"}
    text = "barcode_id,sample_id,layer,x,y\n" + "".join(
        f"{codes[k]},sample01,{short[regions[k]] if k >= 3 else 'NA'},{xy[k][0]},{xy[k][1]}\n"
        for k in range(len(spots)))
    assert round_trip(tmp_path, "colData.csv", text, spots) == ["", "", ""] + [short[r] for r in regions[3:]]
    # the whole array positions (17, 9) of spots measured at 16.92x9.015, tab-separated
    whole = [(round(float(x)), round(float(y))) for x, y in xy]
    text = "barcode\tregion\tpos_x\tpos_y\n" + "".join(f"{c}\t{r}\t{x}\t{y}\n"
                                                       for c, r, (x, y) in zip(codes, regions, whole))
    assert round_trip(tmp_path, "whole.tsv", text, spots) == regions


def test_a_name_the_data_use_and_its_position_must_agree(reference, tmp_path):
    spots, regions = reference
    # a row names one spot of the data and gives another's position: refused, not guessed
    x, y = spots[1].split("x")
    with pytest.raises(InputDataError, match=f"both.tsv: line 2 names spot '{spots[0]}' and gives the position "
                                             f"of spot '{spots[1]}'; correct one of them"):
        round_trip(tmp_path, "both.tsv", f"spot\tregion\tx\ty\n{spots[0]}\tA\t{x}\t{y}\n", spots)
    # positions of another kind (pixels) that match no spot leave the names to decide
    text = "spot\tregion\tx\ty\n" + "".join(f"{s}\t{r}\t{1000 + k}.5\t{2000 + k}.5\n"
                                              for k, (s, r) in enumerate(zip(spots, regions)))
    assert round_trip(tmp_path, "pixels.tsv", text, spots) == regions


def test_columns_are_chosen_by_name_or_refused(reference, tmp_path):
    spots, regions = reference
    # spatialLIBD: the expert layers before 10x's clusters and an older, empty Layer column
    text = "key,Cluster,Layer,layer_guess_reordered\n" + "".join(f"{s},{k % 7},NA,{r}\n"
                                                                for k, (s, r) in enumerate(zip(spots, regions)))
    assert round_trip(tmp_path, "libd.csv", text, spots) == regions
    # pandas' to_csv with its index, and R's write.table with row numbers: the spot column by name
    text = ",spot,region\n" + "".join(f"{k},{s},{r}\n" for k, (s, r) in enumerate(zip(spots, regions)))
    assert round_trip(tmp_path, "index.csv", text, spots) == regions
    text = '"spot" "region"\n' + "".join(f'"{k + 1}" "{s}" "{r}"\n' for k, (s, r) in enumerate(zip(spots, regions)))
    assert round_trip(tmp_path, "numbered.txt", text, spots) == regions
    # a separator at the end of each line adds no column
    assert round_trip(tmp_path, "trailing.tsv", "".join(f"{s}\t{r}\t\n" for s, r in zip(spots, regions)),
                      spots) == regions
    # more than one column could hold the regions and none is named for them: which one?
    codes = barcodes(2)
    with pytest.raises(InputDataError, match=r"wide.csv: no column names the regions \(its columns: "
                                             r"barcode_id, sample_id, note, x, y\); name it 'region'"):
        round_trip(tmp_path, "wide.csv", f"barcode_id,sample_id,note,x,y\n{codes[0]},s1,A,1,2\n", spots)
    with pytest.raises(InputDataError, match=r"empty.csv: its column 'Layer' gives no spot a region"):
        round_trip(tmp_path, "empty.csv", "spot,Layer,other\n" + "".join(f"{s},NA,1\n" for s in spots), spots)
    with pytest.raises(InputDataError, match=r"open.tsv: line 3: a quoted field runs on over the next lines"):
        round_trip(tmp_path, "open.tsv", f'spot\tregion\n{spots[0]}\tGL\n{spots[1]}\t"MCL\n{spots[2]}\tOPL\n', spots)
    with pytest.raises(InputDataError, match=r"header.tsv: the spot annotation has a header line and no spots"):
        round_trip(tmp_path, "header.tsv", "spot\tregion\n", spots)
    # a first line naming the spot column, rows one field longer: a name with the separator in
    # it, not R's header one field short
    text = "spot region\n" + "".join(f"{s} {r} layer\n" for s, r in zip(spots, regions))
    with pytest.raises(InputDataError, match=r"words.txt: line 2 has 3 space-separated field\(s\), expected 2"):
        round_trip(tmp_path, "words.txt", text, spots)
    text = "spot\tregion\n" + "".join(f"{s}\t{r}\tnote\n" for s, r in zip(spots, regions))
    with pytest.raises(InputDataError, match=r"notes.tsv: line 2 has 3 field\(s\), expected 2; quote names"):
        round_trip(tmp_path, "notes.tsv", text, spots)


def test_position_columns_that_cannot_be_used_say_why(reference, tmp_path):
    spots, regions = reference
    codes = barcodes(3)
    with pytest.raises(InputDataError, match=r"bad.tsv: line 3: y '9,015' is not a number; give both x and y, "
                                             r"or neither"):
        round_trip(tmp_path, "bad.tsv", f"spot\tlayer\tx\ty\n{codes[0]}\tA\t1\t2\n{codes[1]}\tB\t16.92\t9,015\n",
                   spots)
    for x in ("NA", "nan", "inf"):  # half a position, or none that is finite
        with pytest.raises(InputDataError, match=f"half.tsv: line 2: pos_x '{x}' is not a number"):
            round_trip(tmp_path, "half.tsv", f"spot\tlayer\tpos_x\tpos_y\n{codes[0]}\tA\t{x}\t9.015\n", spots)
    with pytest.raises(InputDataError, match=r"pos.tsv: no column names the regions \(its columns: spot, x, "
                                             r"y, note, score\); name it 'region'"):
        round_trip(tmp_path, "pos.tsv", f"spot\tx\ty\tnote\tscore\n{codes[0]}\t16.92\t9.015\tA\t1\n",
                   spots)
    with pytest.raises(InputDataError, match=r"line 2 has 3 field\(s\); expected tab-separated columns: "
                                             r"spot, region, x, y"):
        round_trip(tmp_path, "few.tsv", f"spot\tregion\tx\ty\n{codes[0]}\tA\t16.92\n", spots)
    # barcodes the data do not use, and no positions: say what would match
    with pytest.raises(InputDataError, match=rf"none of its 2 spots \(e.g. '{codes[0]}'\) is a spot of the "
                                             r"count matrix \(e.g. '16.92x9.015'\); name them as it does, or "
                                             r"give their positions in columns 'x' and 'y'"):
        round_trip(tmp_path, "codes.tsv", f"spot\tregion\n{codes[0]}\tA\n{codes[1]}\tB\n", spots)
    with pytest.raises(InputDataError, match=r"is a spot of the count matrix \(e.g. '16.92x9.015'\), by name or "
                                             r"by the position of its columns 'array_x' and 'array_y'"):
        round_trip(tmp_path, "far.tsv", f"spot\tregion\tarray_x\tarray_y\n{codes[0]}\tA\t99.5\t99.5\n", spots)
    # two barcodes at one position with two regions: refused, naming both lines
    x, y = spots[4].split("x")
    with pytest.raises(InputDataError, match=f"line 3 gives spot '{codes[1]}' region 'B', line 2 gave spot "
                                             f"'{codes[0]}' \\(the same position\\) region 'A'"):
        round_trip(tmp_path, "twice.tsv", f"spot\tregion\tx\ty\n{codes[0]}\tA\t{x}\t{y}\n{codes[1]}\tB\t{x}\t{y}\n",
                   spots)


def test_tables_separated_otherwise_than_their_name_says(reference, tmp_path):
    spots, regions = reference
    codes = barcodes(len(spots))
    xy = [s.split("x") for s in spots]
    # R's write.table with its defaults: space-separated, quoted, the header one field short
    text = '"annot" "x" "y"\n' + "".join(f'"{c}" "{r} layer" {x} {y}\n' for c, r, (x, y) in zip(codes, regions, xy))
    assert round_trip(tmp_path, "mob_annot.txt", text, spots) == [f"{r} layer" for r in regions]
    # commas in a .tsv, and a plain two-column table separated by single spaces
    text = "spot,region\n" + "".join(f"{s},{r}\n" for s, r in zip(spots, regions))
    assert round_trip(tmp_path, "layers.tsv", text, spots) == regions
    assert round_trip(tmp_path, "layers.txt", "".join(f"{s} {r}\n" for s, r in zip(spots, regions)), spots) == regions
    # unquoted names with spaces would shift the columns: refused, naming the line
    text = "".join(f"{s} {r}\n" for s, r in zip(spots, regions)) + f"{spots[0]} Granule cell layer\n"
    with pytest.raises(InputDataError, match=rf"spaces.txt: line {len(spots) + 1} has 4 space-separated "
                                             r"field\(s\), expected 2; quote names that hold spaces"):
        round_trip(tmp_path, "spaces.txt", text, spots)


def test_more_layouts_people_write(reference, tmp_path, caplog):
    spots, regions = reference
    expected = annotated_regions(LAYERS)
    # R's write.table of data.frame(spot = names(a), layer = a): the row names are the spots too
    path = "rownames.txt"
    text = '"spot" "layer"\n' + "".join(f'"{s}" "{s}" "{r}"\n' for s, r in zip(spots, regions))
    assert round_trip(tmp_path, path, text, spots) == regions and annotated_regions(tmp_path / path) == expected
    # a separator at the end of every line, the header's too (Excel, Loupe Browser)
    for path, text in (("trailing.tsv", "barcode\tregion\n" + "".join(f"{s}\tGL\t\n" for s in spots)),
                       ("excel.csv", "barcode,celltype,\n" + "".join(f"{s},GL,\n" for s in spots))):
        assert round_trip(tmp_path, path, text, spots) == ["GL"] * len(spots), path
        assert annotated_regions(tmp_path / path) == {"GL": len(spots)}, path
    # the region first, the spot column named after it; the spot column after two others
    text = "layer\tspot\n" + "".join(f"{r}\t{s}\n" for s, r in zip(spots, regions))
    assert round_trip(tmp_path, "swapped.tsv", text, spots) == regions
    text = ",sample,barcode,region\n" + "".join(f"{k},s1,{s},{r}\n" for k, (s, r) in enumerate(zip(spots, regions)))
    assert round_trip(tmp_path, "third.csv", text, spots) == regions
    # scanpy's obs written by pandas, Seurat's meta.data, spatialLIBD's app: a column named for them
    for path, head, row in (("obs.csv", ",in_tissue,n_counts,leiden", "{s},1,2000,{r}"),
                            ("meta.csv", '"","orig.ident","nCount_Spatial","seurat_clusters"',
                             '"{s}","mob",2000,"{r}"'),
                            ("libd.csv", "sample_id,spot_name,ManualAnnotation", "151673,{s},{r}")):
        text = head + "\n" + "".join(row.format(s=s, r=r) + "\n" for s, r in zip(spots, regions))
        assert round_trip(tmp_path, path, text, spots) == regions and annotated_regions(tmp_path / path) == expected
    # two columns either of which could hold the regions, neither named for them: refused
    with pytest.raises(InputDataError, match=r"two.csv: no column names the regions \(its columns: spot, "
                                             r"group, batch\)"):
        round_trip(tmp_path, "two.csv", "spot,group,batch\n" + "".join(f"{s},{r},1\n" for s, r in
                                                                           zip(spots, regions)), spots)
    # rows naming no spot of the data are left out, and the log says how many
    text = "".join(f"{s}\t{r}\n" for s, r in zip(spots, regions)) + "99x99\tGL\n98x98\tGL\n"
    with caplog.at_level("WARNING"):
        assert round_trip(tmp_path, "extra.tsv", text, spots) == regions
    assert f"2 of its annotated rows name no spot of the data, left out (first: line {len(spots) + 1}, " \
           f"'99x99')" in caplog.text
