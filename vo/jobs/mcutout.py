"""The ViaLactea multi-cutout runner: a JSON array of cutouts in, ``Report`` and ``mcutout.tar.gz`` out.

Pure: no HTTP and no job SQL. The request document was checked and stored with the job as
:data:`REQUEST` when it was created (``app/routers/vialactea_jobs.py``); a job created with the
document as a plain form field (``MCUTOUT``) reads it from its parameters instead. Each element
is cut exactly as ``/soda/sync`` would cut it (:func:`vo.soda.cutout`), streamed into the
archive as it is read, so memory stays flat. A cut that fails (malformed element, unknown or
hidden ID, no overlap) is reported and the others go on: the job COMPLETES whenever the
document itself is valid, and the report says what each cut became. The archive holds every
cut and, last, the report as ``report.json``.

Datasets are looked up for the job's owner with the groups they had at creation (``ctx.caller``): an
ID the owner may not read is reported exactly like a missing one.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Iterator, Mapping
from typing import Any

from db.jobs import ResultRow
from vo import soda
from vo.caller import Dataset, datasets_blocking
from vo.dali import DaliParams
from vo.errors import UsageError, VlkbError
from vo.uws.context import RunContext
from vo.vialactea.mcutout import failure, member_name, parse_entry, parse_request, success

__all__ = ["ARCHIVE", "REPORT", "REQUEST", "run_mcutout"]

#: the stored request document, next to the job's results (never a result itself)
REQUEST = "mcutout.json"
#: the result names the client fetches
REPORT = "Report"
ARCHIVE = "mcutout.tar.gz"


class _ChunkReader(io.RawIOBase):
    """A raw file over an iterator of byte chunks; buffered, it is what ``TarFile.addfile`` reads
    (which wants every ``read(n)`` whole)."""

    def __init__(self, chunks: Iterator[bytes | memoryview], ctx: RunContext) -> None:
        self._chunks = chunks
        self._ctx = ctx
        self._buf: bytes | memoryview = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:  # noqa: ANN401 - the buffer protocol has no precise type
        while not self._buf:
            self._ctx.check()
            nxt = next(self._chunks, None)
            if nxt is None:
                return 0
            self._buf = nxt
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def _request(params: Mapping[str, list[str]], ctx: RunContext, max_cuts: int) -> list[Any]:
    location = ctx.results.location(ctx.job_id, REQUEST)
    if ctx.results.exists(location):
        data = b"".join(ctx.results.read(location))
    elif (field := DaliParams(params).single("MCUTOUT")) is not None:
        data = field.encode()
    else:
        raise UsageError("mcutout: missing; send the JSON array of cutouts as the multipart part 'mcutout'")
    return parse_request(data, max_cuts=max_cuts)


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = int(time.time())
    return info


def _cut(tar: tarfile.TarFile, index: int, q: soda.SodaParams, ds: Dataset | None, ctx: RunContext) -> str:
    cut = soda.open_cutout(ds, q)
    name = member_name(index, q.id)
    tar.addfile(_member(name, cut.size), io.BufferedReader(_ChunkReader(cut.chunks(), ctx)))
    return name


def run_mcutout(params: Mapping[str, list[str]], ctx: RunContext, *, max_cuts: int) -> list[ResultRow]:
    """Cut every element of the job's request into the archive; the report lists each outcome in order."""
    items = _request(params, ctx, max_cuts)
    parsed: list[soda.SodaParams | VlkbError] = []
    for item in items:
        try:
            parsed.append(parse_entry(item))
        except VlkbError as exc:
            parsed.append(exc)
    ids = [q.id for q in parsed if isinstance(q, soda.SodaParams)]
    with ctx.connect() as conn:
        found = datasets_blocking(conn, ids, ctx.caller)
    report: list[dict[str, Any]] = []
    with ctx.results.writer(ctx.job_id, ARCHIVE) as out, tarfile.open(fileobj=out, mode="w|gz") as tar:
        for index, (item, q) in enumerate(zip(items, parsed, strict=True)):
            ctx.check()
            if isinstance(q, VlkbError):
                report.append(failure(index, item, q))
                continue
            try:
                name = _cut(tar, index, q, found.get(q.id), ctx)
            except VlkbError as exc:
                report.append(failure(index, item, exc))
                continue
            report.append(success(index, item, name))
        body = json.dumps(report, indent=1).encode()
        tar.addfile(_member("report.json", len(body)), io.BytesIO(body))
    return [ctx.result(REPORT, "application/json", body), ctx.result(ARCHIVE, "application/gzip")]
