"""The TAP async runner: TAP query parameters in, one result file out (``result``).

Pure: no HTTP and no job SQL. The query runs over its own connection with
``statement_timeout`` = the job's execution duration, and streams through the synchronous
writer straight into the results store, so memory stays flat whatever the row count.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from db.jobs import ResultRow
from vo.adql import translate
from vo.errors import UsageError, VlkbError
from vo.tap import TapQuery, published_catalog
from vo.uws.context import RunContext
from vo.votable.writers import stream_result

__all__ = ["run_tap"]


def run_tap(params: Mapping[str, list[str]], ctx: RunContext, *, maxrec_default: int,
            maxrec_limit: int) -> list[ResultRow]:
    """Run the job's query into ``<results>/<job_id>/result``."""
    q = TapQuery.from_params(dict(params), maxrec_default=maxrec_default, maxrec_limit=maxrec_limit)
    translation = translate(q.query, published_catalog(), maxrec=q.maxrec)
    infos = {"QUERY": q.query, "LANG": q.lang}
    if q.runid is not None:
        infos["RUNID"] = q.runid
    started = time.monotonic()
    try:
        with ctx.connect() as conn, ctx.results.writer(ctx.job_id, "result") as out:
            for chunk in stream_result(conn, translation.sql, translation.columns, q.format, maxrec=q.maxrec,
                                       infos=infos, timeout=ctx.timeout):
                out.write(chunk)
            # a cancel after the first rows ends the document with an ERROR INFO rather than raising
            ctx.check()
            _check_duration(ctx, started)
    except VlkbError as exc:
        ctx.check()
        _check_duration(ctx, started, exc)
        raise
    location = ctx.results.location(ctx.job_id, "result")
    return [ResultRow(ctx.job_id, "result", location, q.format.media_type, ctx.results.size(location))]


def _check_duration(ctx: RunContext, started: float, cause: BaseException | None = None) -> None:
    """Raise the UWS-worded error when the job used up its execution duration (statement_timeout)."""
    if ctx.timeout is not None and time.monotonic() - started >= ctx.timeout:
        raise UsageError(f"the query ran longer than the execution duration ({ctx.timeout:g} s) "
                         "and was cancelled") from cause
