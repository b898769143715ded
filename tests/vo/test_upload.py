"""TAP UPLOAD core (vo/upload.py): the UPLOAD parameter, safe VOTable reading, column typing, COPY text.

VOTables are written by astropy (as clients do), in every serialisation, and read back.
"""

from __future__ import annotations

import gzip
import io

import numpy as np
import pytest
from astropy.io import votable
from astropy.table import MaskedColumn, Table

from vo.errors import TooLargeError, UsageError
from vo.upload import UploadLimits, UploadRef, parse_upload, read_upload, read_uploads, stored_name

pytestmark = pytest.mark.timeout(60)


def vot_bytes(table: Table, fmt: str = "tabledata", xtypes: dict[str, str] | None = None) -> bytes:
    doc = votable.from_table(table)
    t = doc.get_first_table()
    for f in t.fields:
        if xtypes and f.name in xtypes:
            f.xtype = xtypes[f.name]
        if f.datatype in ("short", "int", "long") and f.values.null is None:
            f.values.null = -99  # BINARY has no other way to say NULL for integers
    t.format = fmt
    out = io.BytesIO()
    doc.to_xml(out)
    return out.getvalue()


def sample() -> Table:
    t = Table({
        "id": MaskedColumn(np.array([1, 2, 3], dtype=np.int32), mask=[False, True, False]),
        "small": np.array([1, -2, 3], dtype=np.int16),
        "big": np.array([2**40, 0, -1], dtype=np.int64),
        "x": np.array([0.1, np.nan, -np.inf]),
        "f": np.array([0.5, 1.25, 3.0], dtype=np.float32),
        "name": ["a", "tab\there", "back\\slash"],
        "ok": [True, False, True],
        "pos": np.array([[10.0, -5.0], [359.5, 89.0], [0.0, 0.0]]),
    })
    t["x"].unit = "deg"
    t["x"].description = "an angle"
    return t


# -- the UPLOAD parameter ----------------------------------------------------------------------


def test_parse_upload_several_forms() -> None:
    refs = parse_upload(["a,param:p1;b , param:p2", 'c,param:x;"My Table",param:y'])
    assert refs == (UploadRef("a", "p1"), UploadRef("b", "p2"), UploadRef("c", "x"), UploadRef("My Table", "y"))
    assert refs[3].label == 'TAP_UPLOAD."My Table"'
    assert parse_upload([]) == ()


@pytest.mark.parametrize("value, fragment", [
    ("t,ftp://example.org/t.xml", "other URI schemes are not fetched"),
    ("t,file:///etc/passwd", "other URI schemes are not fetched"),
    ("t,table1", "neither param:PART"),
    ("t,http:example.org", "not a valid http URL"),
    ("t,https://", "not a valid https URL"),
    ("t,param:", "must name the request part"),
    ("justaname", "expected name,param:part"),
    ("1abc,param:p", "not a valid table name"),
    ("a.b,param:p", "not a valid table name"),
    ("select,param:p", "reserved word"),
    ('"bad"quote",param:p', "not a valid table name"),
    ("x" * 64 + ",param:p", "not a valid table name"),
    ("t,param:a;T,param:b", "uploaded twice"),
])
def test_parse_upload_refusals(value: str, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        parse_upload([value])


def test_parse_upload_urls() -> None:
    refs = parse_upload(["a,https://example.org/t.xml?x=1;b,HTTP://example.org:8080/u;c,param:p"])
    assert refs == (UploadRef("a", url="https://example.org/t.xml?x=1"), UploadRef("b", url="HTTP://example.org:8080/u"),
                    UploadRef("c", "p"))


def test_stored_name_is_a_safe_file_name() -> None:
    name = stored_name("../../etc/passwd")
    assert name.startswith("upload-") and "/" not in name and name == stored_name("../../etc/passwd")


# -- reading and typing ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["tabledata", "binary", "binary2"])
def test_types_and_copy_text(fmt: str) -> None:
    data = vot_bytes(sample(), fmt, {"pos": "point"})
    up = read_upload(UploadRef("mine", "p"), data, 0)
    types = {c.name: c.type for c in up.table.columns}
    assert types == {"id": "int", "small": "short", "big": "long", "x": "double", "f": "float", "name": "text",
                     "ok": "boolean", "pos": "point"}
    x = up.table.column("x")
    assert (x.unit, x.description) == ("deg", "an angle")
    assert up.table.qualified_name == "TAP_UPLOAD.mine" and up.sql_name == "tap_upload_0" and up.nrows == 3
    rows = [line.split("\t") for line in up.copy_text.decode().splitlines()]
    assert rows[0] == ["1", "1", str(2**40), "0.1", "0.5", "a", "t", "(10.0d,-5.0d)"]
    # masked int and NaN are NULL, escapes follow COPY text rules
    assert rows[1][0] == "\\N" and rows[1][3] == "\\N" and rows[1][5] == "tab\\there"
    assert rows[2][3] == "-Infinity" and rows[2][5] == "back\\\\slash"
    assert [c for c, _ in up.temp_table().columns] == list(types)


def test_geometry_and_timestamp_columns() -> None:
    t = Table({
        "c": np.array([[10.0, 20.0, 0.5]]),
        "poly": np.array([[0.0, 0.0, 1.0, 0.0, 1.0, 1.0]]),
        "t": ["2020-01-02T03:04:05"],
    })
    data = vot_bytes(t, "tabledata", {"c": "circle", "poly": "polygon", "t": "timestamp"})
    up = read_upload(UploadRef("g", "p"), data, 2)
    assert [c.type for c in up.table.columns] == ["circle", "polygon", "timestamp"]
    assert up.copy_text.decode().rstrip("\n").split("\t") == [
        "<(10.0d,20.0d),0.5d>", "{(0.0d,0.0d),(1.0d,0.0d),(1.0d,1.0d)}", "2020-01-02T03:04:05",
    ]


def _doc(fields: str, data: str = "") -> bytes:
    return (f'<?xml version="1.0"?><VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">'
            f"<RESOURCE><TABLE>{fields}<DATA>{data}</DATA></TABLE></RESOURCE></VOTABLE>").encode()


GOOD = vot_bytes(Table({"a": [1, 2]}))


@pytest.mark.parametrize("data, fragment", [
    (b"not a votable", "not a VOTable"),
    (gzip.compress(GOOD), "not a VOTable"),
    (b"<VOTABLE><RESOURCE/></VOTABLE>", "holds no TABLE"),
    (b"<VOTABLE><RESOURCE><TABLE><FIELD", "not a readable VOTable"),
    (b'<!DOCTYPE v [<!ENTITY a "aaaa">]><VOTABLE>&a;</VOTABLE>', "DOCTYPE"),
    (_doc('<FIELD name="a" datatype="int"/>', '<BINARY><STREAM href="http://example.org/x"/></BINARY>'),
     "STREAM href"),
    (_doc('<FIELD name="a" datatype="int"/>', '<BINARY><STREAM encoding="gzip">AAAA</STREAM></BINARY>'),
     "encoding"),
    (_doc('<FIELD name="a" datatype="int"/>', '<FITS><STREAM encoding="base64">AAAA</STREAM></FITS>'),
     "FITS"),
    ("<VOTABLE/>".encode("utf-16"), "not a VOTable"),
    (_doc('<FIELD name="a" datatype="double" arraysize="5"/>'), "arrays"),
    (_doc('<FIELD name="a" datatype="doubleComplex"/>'), "datatype doubleComplex"),
    (_doc('<FIELD name="a" datatype="double" arraysize="3" xtype="point"/>'), "needs arraysize 2"),
    (_doc('<FIELD name="a" datatype="char" arraysize="3x2"/>'), "3x2"),
    (_doc('<FIELD name="a" datatype="char" arraysize="0"/>'), "arraysize '0' is not valid"),
    (_doc('<FIELD name="a" datatype="double" arraysize="0"/>'), "arraysize '0' is not valid"),
    (_doc('<FIELD name="a" datatype="int" arraysize="-1"/>'), "Invalid arraysize attribute '-1'"),
    (_doc('<FIELD name="a" datatype="int" arraysize="2x0"/>'), "arraysize '2x0' is not valid"),
    (_doc('<FIELD name="a" datatype="int"/><FIELD name="A" datatype="int"/>'), "same name"),
    (_doc('<FIELD name="a&quot;b" datatype="int"/>'), "column name"),
    (_doc(""), "no FIELD"),
])
def test_bad_votables(data: bytes, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        read_upload(UploadRef("t", "p"), data, 0)


def test_limits_hold_for_all_tables_together() -> None:
    refs = parse_upload(["a,param:p;b,param:q"])
    parts = {"p": vot_bytes(Table({"v": np.arange(30)})), "q": vot_bytes(Table({"v": np.arange(30)}))}
    assert [u.nrows for u in read_uploads(refs, parts, UploadLimits(max_rows=60, max_bytes=10**6))] == [30, 30]
    with pytest.raises(TooLargeError, match="too many rows"):
        read_uploads(refs, parts, UploadLimits(max_rows=59, max_bytes=10**6))
    size = len(parts["p"]) + len(parts["q"])
    with pytest.raises(TooLargeError, match=f"{size} bytes"):
        read_uploads(refs, parts, UploadLimits(max_rows=100, max_bytes=size - 1))
    with pytest.raises(UsageError, match="no part named 'q'"):
        read_uploads(refs, {"p": parts["p"]}, None)


def test_arraysize_one_on_numbers_is_a_scalar() -> None:
    """arraysize="1" is a one-element array, which VOTable readers treat as the scalar."""
    data = _doc('<FIELD name="d" datatype="double" arraysize="1"/><FIELD name="i" datatype="int" arraysize="1"/>',
                "<TABLEDATA><TR><TD>1.5</TD><TD>7</TD></TR><TR><TD></TD><TD>8</TD></TR></TABLEDATA>")
    up = read_upload(UploadRef("t", "p"), data, 0)
    assert [c.type for c in up.table.columns] == ["double", "int"]
    assert up.copy_text.decode().splitlines() == ["1.5\t7", "\\N\t8"]


def test_column_limit_is_checked_before_parsing() -> None:
    fields = "".join(f'<FIELD name="c{i}" datatype="int"/>' for i in range(50))
    data = _doc(fields, "<TABLEDATA><TR>" + "<TD>1</TD>" * 50 + "</TR></TABLEDATA>")
    assert len(read_uploads(parse_upload(["t,param:p"]), {"p": data},
                            UploadLimits(max_rows=10, max_bytes=10**6, max_columns=50))[0].table.columns) == 50
    with pytest.raises(TooLargeError, match="more than 49 columns"):
        read_uploads(parse_upload(["t,param:p"]), {"p": data}, UploadLimits(max_rows=10, max_bytes=10**6,
                                                                            max_columns=49))
    # counted before astropy reads anything: a truncated document still gets the column message
    with pytest.raises(TooLargeError, match="more than 49 columns"):
        read_upload(UploadRef("t", "p"), data[:-60], 0, max_columns=49)
