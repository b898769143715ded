"""The ADQL corpus (corpus.yaml): each query translated, run on PostgreSQL + pgSphere, and its
rows compared with an answer computed independently (tests/adql/expect.py); each query
that must be refused checked for its message.

Every run also checks the translation's contract with the writers: the result set has the
announced column names and PostgreSQL types (``OutputColumn.pgtype``).
"""

from __future__ import annotations

import math
import re
import struct
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from tests.adql.conftest import AdqlDb
from tests.adql.expect import namespace, same_rows
from tests.adql.tables import corpus_catalog
from vo.adql import translate
from vo.adql.geometry import TWIN_PG
from vo.errors import UsageError

CORPUS = yaml.safe_load((Path(__file__).parent / "corpus.yaml").read_text(encoding="utf-8"))
GOOD = [e for e in CORPUS if "error" not in e]
BAD = [e for e in CORPUS if "error" in e]

#: OutputColumn.pgtype -> PostgreSQL's internal type name
PG_NAMES = {
    "smallint": "int2", "integer": "int4", "bigint": "int8", "real": "float4", "double precision": "float8",
    "boolean": "bool", "text": "text", "timestamp": "timestamp", "float8[]": "_float8", TWIN_PG: TWIN_PG,
}


def _dali_values(value: Any) -> tuple[float, ...] | None:
    """The numbers of DALI forms (``vlkb_dali_twin``: binary form, text list), once both forms are
    seen to hold the same ones: what the writers of every format will write."""
    if value is None:
        return None
    numbers = tuple(float(x) for x in value.t.split())
    data = value.b
    if len(data) != 8 * len(numbers):  # a variable-length array: its element count first
        assert struct.unpack(">i", data[:4])[0] == len(numbers), value
        data = data[4:]
    binary = struct.unpack(f">{len(numbers)}d", data)
    assert all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(binary, numbers, strict=True)), value
    return numbers


def _type_name(conn: psycopg.Connection, oid: int) -> str:
    info = conn.adapters.types.get(oid)
    assert info is not None, oid
    return info.name if info.oid == oid else "_" + info.name


def test_corpus_size() -> None:
    assert len(GOOD) >= 150
    assert len(BAD) >= 40
    ids = [e["id"] for e in CORPUS]
    assert len(ids) == len(set(ids)), "corpus ids must be unique"


@pytest.mark.parametrize("entry", GOOD, ids=[e["id"] for e in GOOD])
def test_query(entry: dict, adql_db: AdqlDb) -> None:
    tr = translate(entry["adql"], adql_db.catalog, maxrec=entry.get("maxrec"))
    conn = adql_db.conn
    try:
        conn.execute("SET LOCAL statement_timeout = '20s'")
        cur = conn.execute(tr.sql)
        actual = cur.fetchall()
        description = cur.description
    except psycopg.Error as err:
        pytest.fail(f"{err}\nSQL: {tr.sql}")
    finally:
        conn.rollback()
    assert [d.name for d in description] == [c.name for c in tr.columns]
    types = [_type_name(conn, d.type_code) for d in description]
    assert types == [PG_NAMES[c.pgtype] for c in tr.columns], tr.sql
    twins = [i for i, c in enumerate(tr.columns) if c.pgtype == TWIN_PG]
    if twins:
        actual = [tuple(_dali_values(v) if i in twins else v for i, v in enumerate(row)) for row in actual]
    if "names" in entry:
        assert [c.name for c in tr.columns] == entry["names"]
    expected = eval(entry["expect"], namespace(adql_db.raw))  # noqa: S307 - test data
    problem = same_rows(actual, expected, ordered=entry.get("ordered", False))
    assert problem is None, f"{problem}\nSQL: {tr.sql}"


@pytest.mark.parametrize("entry", BAD, ids=[e["id"] for e in BAD])
def test_refused(entry: dict) -> None:
    with pytest.raises(UsageError) as info:
        translate(entry["adql"], corpus_catalog())
    assert re.search(entry["error"], info.value.message, re.IGNORECASE), info.value.message
