"""The TAP async runner: TAP query parameters in, one result file out (``result``).

Pure: no HTTP and no job SQL. The query runs over its own connection with
``statement_timeout`` = the job's execution duration, and streams through the synchronous
writer straight into the results store, so memory stays flat whatever the row count.
Inline uploaded tables (UPLOAD) were stored with the job when it was created
(``app/routers/tap_async.py``) and are read back from the results store; tables uploaded by URL
are fetched now, through the guarded fetch (``vo/upload_fetch.py``), within the fetch timeout and
what is left of the job's execution duration. Both are loaded into the query's transaction.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from db.jobs import ResultRow
from vo.errors import UsageError, VlkbError
from vo.results import stream_select_blocking
from vo.tap import TapQuery, plan_query
from vo.upload import UploadedTable, UploadLimits, inline_bytes, read_uploads, stored_name, url_items
from vo.upload_fetch import FetchPolicy, fetch_urls
from vo.usertables import mentions_user_tables, readable_blocking
from vo.uws.context import RunContext

__all__ = ["run_tap"]


def run_tap(params: Mapping[str, list[str]], ctx: RunContext, *, maxrec_default: int,
            maxrec_limit: int, upload_limits: UploadLimits | None = None,
            fetch_policy: FetchPolicy | None = None, max_query_length: int | None = None,
            base_url: str | None = None) -> list[ResultRow]:
    """Run the job's query into ``<results>/<job_id>/result``.

    ``upload_limits`` apply again to the stored uploads (they were checked at creation) and to
    those fetched by URL under ``fetch_policy`` (default: no address the policy forbids);
    ``max_query_length`` bounds QUERY as for synchronous queries. The result's URLs start with the
    public base URL of the service the job was created through (``ctx.base_url``), whichever
    process or machine runs it; ``base_url``, the configured one (``VLKB_BASE_URL``), serves jobs
    created before jobs kept theirs.
    """
    q = TapQuery.from_params(dict(params), maxrec_default=maxrec_default, maxrec_limit=maxrec_limit,
                             max_query_length=max_query_length)
    uploads = _stored_uploads(q, ctx, upload_limits, fetch_policy or FetchPolicy())
    mine = []
    if mentions_user_tables(q.query):
        # the owner's readable user tables, through the access rule of their session
        with ctx.connect() as conn:
            mine = readable_blocking(conn, ctx.caller)
    plan, _ = plan_query(q, uploads, base_url=ctx.base_url or base_url, user_tables=mine)
    started = time.monotonic()
    try:
        with ctx.results.writer(ctx.job_id, "result") as out:
            for chunk in stream_select_blocking(ctx.aconnect, plan, ctx.caller, timeout=ctx.timeout):
                out.write(chunk)
            # a cancel after the first rows ends the document with an ERROR INFO rather than raising
            ctx.check()
            _check_duration(ctx, started)
    except VlkbError as exc:
        ctx.check()
        _check_duration(ctx, started, exc)
        raise
    return [ctx.result("result", q.format.media_type)]


def _stored_uploads(q: TapQuery, ctx: RunContext, limits: UploadLimits | None,
                    policy: FetchPolicy) -> list[UploadedTable]:
    """The job's uploaded tables: inline ones read back from where its creation kept them,
    the others fetched from their URLs."""
    parts: dict[str, bytes] = {}
    for ref in q.uploads:
        if ref.url is not None:
            continue
        location = ctx.results.location(ctx.job_id, stored_name(ref.part))
        try:
            # through the store, so uploads work whatever it is (a directory, object storage)
            parts[ref.part] = b"".join(ctx.results.read(location))
        except FileNotFoundError:
            raise UsageError(f"UPLOAD {ref.label}: no table was sent as part {ref.part!r} with this job "
                             "(send it in the multipart POST that creates the job)") from None
    fetched: dict[str, bytes] = {}
    items = url_items(q.uploads)
    if items:
        left = None if ctx.deadline is None else max(ctx.deadline - time.monotonic(), 0.001)
        budget = (1 << 62) if limits is None else limits.max_bytes - inline_bytes(q.uploads, parts)
        fetched = fetch_urls(items, budget, policy, timeout=left)
    return read_uploads(q.uploads, parts, limits, fetched)


def _check_duration(ctx: RunContext, started: float, cause: BaseException | None = None) -> None:
    """Raise the UWS-worded error when the job used up its execution duration (statement_timeout)."""
    if ctx.timeout is not None and time.monotonic() - started >= ctx.timeout:
        raise UsageError(f"the query ran longer than the execution duration ({ctx.timeout:g} s) "
                         "and was cancelled") from cause
