"""Binary COPY of column arrays (db/load.py) into a real table, read back as the database has it."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest

from db.load import copy_columns
from schemas import Column, Table

pytestmark = pytest.mark.timeout(60)


def _table(*columns: Column) -> Table:
    return Table(name="load_probe", description="probe", columns=list(columns), schema_name="public")


def test_char_text_and_numbers_load_as_given(database) -> None:
    """``char`` (ASCII text kept as VOTable char) has no fixed-width binary form: it is sent as text."""
    decl = _table(Column(name="id", type="int", description="id"),
                  Column(name="code", type="char", description="ASCII code"),
                  Column(name="label", type="text", description="any text"),
                  Column(name="flux", type="double", description="flux"))
    codes = ["G010.1+00.2", "", None, "X" * 40]
    labels = ["ρ Oph", "a", "b", None]
    flux = np.array([1.5, np.nan, -2.0, 1e300])
    with psycopg.connect(database.url) as conn:
        conn.execute("CREATE TEMP TABLE load_probe (id integer, code text, label text, flux double precision)")
        decl = decl.model_copy(update={"schema_name": "pg_temp"})
        assert copy_columns(conn, decl, {"id": np.arange(4), "code": codes, "label": labels, "flux": flux}) == 4
        rows = conn.execute("SELECT id, code, label, flux FROM pg_temp.load_probe ORDER BY id").fetchall()
    assert [r[1] for r in rows] == codes
    assert [r[2] for r in rows] == labels
    assert [r[3] for r in rows] == [1.5, None, -2.0, 1e300]
