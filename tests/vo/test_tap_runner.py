"""The TAP async runner, called directly: a result file in the results store, errors raised."""

from __future__ import annotations

from pathlib import Path

import pytest

from vo.errors import UsageError
from vo.jobs.tap import run_tap
from vo.uws.context import RunContext
from vo.uws.results import ResultStore

pytestmark = pytest.mark.timeout(60)


def _ctx(database, tmp_path: Path, job_id: str) -> RunContext:
    return RunContext(job_id, database.url, ResultStore(tmp_path), timeout=30)


def test_result_file_written(database, tmp_path: Path) -> None:
    ctx = _ctx(database, tmp_path, "j1")
    params = {"LANG": ["ADQL"], "QUERY": ["SELECT TOP 3 table_name FROM TAP_SCHEMA.tables"],
              "RESPONSEFORMAT": ["csv"]}
    [result] = run_tap(params, ctx, maxrec_default=100, maxrec_limit=1000)
    assert result.mime_type == "text/csv;header=present"
    data = ctx.results.path(result.location).read_bytes()
    assert data.splitlines()[0] == b"table_name" and len(data.splitlines()) == 4
    assert result.size == len(data)


def test_bad_query_raises_and_writes_nothing(database, tmp_path: Path) -> None:
    ctx = _ctx(database, tmp_path, "j2")
    with pytest.raises(UsageError):
        run_tap({"LANG": ["ADQL"], "QUERY": ["SELECT FROM"]}, ctx, maxrec_default=10, maxrec_limit=10)
    assert not (tmp_path / "j2" / "result").exists()


def test_query_longer_than_the_limit_raises(database, tmp_path: Path) -> None:
    ctx = _ctx(database, tmp_path, "j3")
    query = "SELECT TOP 3 table_name FROM TAP_SCHEMA.tables" + " " * 100
    with pytest.raises(UsageError, match="QUERY: 146 characters, more than this service accepts .100."):
        run_tap({"LANG": ["ADQL"], "QUERY": [query]}, ctx, maxrec_default=10, maxrec_limit=10, max_query_length=100)
    assert not (tmp_path / "j3" / "result").exists()
