"""The stamps runner: sources x surveys in, stamp files, a manifest, a stack and a tar.gz out.

Pure: no HTTP and no job SQL. Sources are read one at a time (:mod:`vo.stamps.sources`) and
made in chunks of :data:`vo.stamps.chunk.CHUNK` (one coverage statement per survey and chunk,
tiles kept open: :mod:`vo.stamps.chunk`), each chunk a part of the job (:data:`CHUNK_PART`,
:meth:`~vo.uws.context.RunContext.fan_out`) that any process running jobs makes, this one
included, :data:`WINDOW` chunks in flight. Each stamp is written into the archive
``stamps.tar.gz`` as it comes (a gzip stream into the results store), its manifest row into a
spooled VOTable, added to the stack when ``STACK`` is asked, and forgotten: memory does not grow
with the number of sources (a ``median`` stack's stamps excepted, docs/stamps.md). A stamp that
fails is a manifest row with its reason and never fails the job; the job fails only when the
request itself is wrong (parameters, surveys, table, query) or when no stamp at all could be made.

Results: ``manifest`` (VOTable, one row per source and survey), ``stamps.tar.gz`` (every
file and the manifest), ``stack-<survey>.fits`` per survey with ``STACK``, and each stamp
file as a result of its own when the job makes at most ``list_limit`` of them. Progress
``n of N`` goes where a UWS client sees it, the job document's ``uws:jobInfo``
(:class:`vo.uws.context.Progress`; a query's rows are spooled and counted before the first stamp).

``SAVE_AS=user_<name>.<table>`` (:mod:`vo.jobs.save_as`) keeps the manifest as a user table: the
name is checked before any source is read, the table is created once the other results are
written, and a ``saved_as`` result (JSON: ``table``, ``rows``, ``read_groups``) records it.

Everything is read for the job's owner with the groups they had at creation (``ctx.caller``).
"""

from __future__ import annotations

import io
import itertools
import json
import shutil
import tarfile
import tempfile
import time
from array import array
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import structlog

from db.jobs import ResultRow
from vo.errors import UsageError
from vo.jobs.save_as import SaveAs
from vo.stamps.chunk import CHUNK, ChunkMaker, kept
from vo.stamps.coverage import SurveyRef, resolve_blocking
from vo.stamps.output import ManifestWriter, cube_file, manifest_row, stamp_file
from vo.stamps.params import StampParams
from vo.stamps.sources import query_sources, table_sources
from vo.stamps.stack import Stacker, scale_about_centre
from vo.stamps.stamp import Options, Source, Stamp
from vo.usertables import Limits
from vo.uws.context import Progress, RunContext

__all__ = ["ARCHIVE", "CHUNK_PART", "MANIFEST", "SAVED_AS", "SOURCES_FILE", "make_chunk", "run_stamps"]

log = structlog.get_logger("vlkb.stamps")

FITS = "application/fits"
VOTABLE = "application/x-votable+xml"
#: the uploaded sources table, kept with the job when it was created (never a result)
SOURCES_FILE = "sources.table"
MANIFEST = "manifest"
ARCHIVE = "stamps.tar.gz"
#: the result recording the user table the manifest was saved as (``SAVE_AS``)
SAVED_AS = "saved_as"
#: the part function making a chunk's stamps (:func:`make_chunk`, registered in app/jobs.py)
CHUNK_PART = "stamps.chunk"
#: chunks queued or being made at once: enough to keep a few processes busy, and memory bounded
WINDOW = 8


@dataclass
class _Archive:
    """The tar.gz being written, and the files to list as results of their own."""

    tar: tarfile.TarFile
    listed: list[tuple[str, int]] = field(default_factory=list)
    files: int = 0

    def add(self, ctx: RunContext, name: str, data: bytes, list_limit: int, expected: int | None) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = int(time.time())
        self.tar.addfile(info, io.BytesIO(data))
        self.files += 1
        if expected is not None and expected <= list_limit:
            with ctx.results.writer(ctx.job_id, name) as out:
                out.write(data)
            self.listed.append((name, len(data)))


def _sources(q: StampParams, ctx: RunContext, *, max_sources: int, max_radius: float,
             max_query_length: int | None) -> tuple[Iterator[Source], int, float | None]:
    """The job's sources, their number (known before any stamp is made: too many fail the job then)
    and, with ``STACKSIZE``, the common size the stamps are scaled to (degrees; None without)."""
    if q.circles:
        if len(q.circles) > max_sources:
            raise UsageError(f"POS: {len(q.circles)} sources; at most {max_sources} per job")
        return iter(q.circles), len(q.circles), None
    if q.query is not None:
        found, count, median = query_sources(ctx.aconnect, q.query, ctx.caller, possys=q.possys,
                                             size=q.size, max_radius=max_radius, max_sources=max_sources,
                                             timeout=ctx.timeout, max_query_length=max_query_length, scale=q.scale)
        if count > max_sources:
            raise UsageError(f"QUERY: more than {max_sources} sources; split the request (VLKB_STAMPS_MAX_SOURCES)")
        return found, count, (q.scale.common if q.scale is not None and q.scale.common else median)
    location = ctx.results.location(ctx.job_id, SOURCES_FILE)
    data = b"".join(ctx.results.read(location)) if ctx.results.exists(location) else (q.table or "").encode()

    def read() -> Iterator[Source]:
        return table_sources(data, possys=q.possys, size=q.size, max_radius=max_radius, max_sources=max_sources,
                             scale=q.scale)

    # read the table through once first, so a malformed row fails the job before any stamp is made, and
    # N (and the sizes' median) is known; then again for the stamps (the Sources are never all held)
    sizes = array("d")
    count = 0
    for src in read():
        count += 1
        if src.size is not None:
            sizes.append(src.size)
    common = q.scale.common if q.scale is not None else None
    if q.scale is not None and common is None and len(sizes):
        common = float(np.median(sizes))
    return read(), count, common


#: the key of a source's cube in :func:`_names`
CUBE = ""


def _names(src: Source, n: int, surveys: list[SurveyRef]) -> dict[str, str]:
    """The file of each stamp of source ``n`` (and of its cube, under :data:`CUBE`)."""
    stem = "".join(c if c.isascii() and (c.isalnum() or c in "-.") else "_" for c in src.name)[:48] or "source"
    return {CUBE: f"{n:06d}_{stem}_cube.fits", **{s.text: f"{n:06d}_{stem}_{s.slug}.fits" for s in surveys}}


def make_chunk(payload: tuple[list[SurveyRef], Options, list[Source]], ctx: RunContext) -> list[list[Stamp]]:
    """The part function: the stamps of one chunk of sources, read for the job's owner (``ctx.caller``)."""
    surveys, options, sources = payload
    known, tiles = kept(ctx.job_id)
    with ctx.connect() as conn:
        return ChunkMaker(conn, ctx.caller, surveys, options, known, tiles).make(sources)


def _made(ctx: RunContext, surveys: list[SurveyRef], options: Options,
          sources: Iterator[Source]) -> Iterator[tuple[list[Source], list[list[Stamp]]]]:
    """Each chunk of sources with its stamps, in order, made by the job's parts (:data:`WINDOW` in
    flight, so memory does not grow with N)."""
    flight: deque[list[Source]] = deque()

    def payloads() -> Iterator[tuple[list[SurveyRef], Options, list[Source]]]:
        for chunk in _chunked(sources, CHUNK):
            flight.append(chunk)
            yield surveys, options, chunk

    for stamps in ctx.fan_out(CHUNK_PART, payloads(), window=WINDOW):
        yield flight.popleft(), stamps


def _chunked(sources: Iterator[Source], size: int) -> Iterator[list[Source]]:
    while chunk := list(itertools.islice(sources, size)):
        yield chunk


def run_stamps(params: Mapping[str, list[str]], ctx: RunContext, *, max_sources: int, max_radius: float,
               max_voxels: int, list_limit: int = 200, max_query_length: int | None = None,
               table_limits: Limits | None = None) -> list[ResultRow]:
    """Make the job's stamps into the results store; see the module text for the results.
    ``table_limits``: the user-table quota, which ``SAVE_AS`` needs (None: SAVE_AS refused; the
    quota kept with the job, ``ctx.terms``, comes first)."""
    stored = ctx.results.exists(ctx.results.location(ctx.job_id, SOURCES_FILE))
    q = StampParams.from_params(dict(params), max_radius=max_radius, max_voxels=max_voxels, table_file=stored)
    save_as = SaveAs.at_start(params, ctx, table_limits)
    stackers: dict[str, Stacker] = {}
    reasons: dict[str, None] = {}
    made = 0
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - the manifest, closed below
    with spool, ctx.connect() as conn:
        surveys = resolve_blocking(conn, q.surveys, ctx.caller)
        if q.stack is not None:
            stackers = {s.text: Stacker(q.stack) for s in surveys}
        sources, total, common = _sources(q, ctx, max_sources=max_sources, max_radius=max_radius,
                                          max_query_length=max_query_length)
        per_source = 1 if q.format == "cube" else len(surveys)
        expected = total * per_source
        manifest = ManifestWriter(spool)
        with ctx.results.writer(ctx.job_id, ARCHIVE) as raw, tarfile.open(fileobj=raw, mode="w|gz") as tar:
            archive = _Archive(tar)
            progress = Progress(ctx, total)
            t0 = time.monotonic()
            n = 0
            for chunk, stamps in _made(ctx, surveys, q.options, sources):
                for src, mine in zip(chunk, stamps, strict=True):
                    n += 1
                    made += _write(ctx, q, archive, mine, _names(src, n, surveys), manifest, list_limit, expected)
                    for st in mine:
                        if not st.ok and len(reasons) < 5:
                            reasons[st.error] = None
                        if st.ok and st.survey in stackers:
                            assert st.data is not None
                            stackers[st.survey].add(_scaled(st, common), st.header)
                progress.report(n)
            log.info("stamps made", job_id=ctx.job_id, sources=n, stamps=made, seconds=round(time.monotonic() - t0, 1))
            if n == 0:
                raise UsageError("no sources: the table or query gave no rows")
            if made == 0:
                raise UsageError("no stamp could be made: " + "; ".join(reasons))
            manifest.close()
            for survey, stacker in stackers.items():
                _add_stack(ctx, archive, survey, stacker, surveys, list_limit, common if q.scale else None)
            size = spool.tell()
            spool.seek(0)
            info = tarfile.TarInfo("manifest.xml")
            info.size, info.mtime = size, int(time.time())
            tar.addfile(info, spool)
        spool.seek(0)
        with ctx.results.writer(ctx.job_id, MANIFEST) as out:
            shutil.copyfileobj(spool, out)
        spool.seek(0)
        manifest_bytes = spool.read() if save_as is not None else b""
    results = [_row(ctx, MANIFEST, VOTABLE), _row(ctx, ARCHIVE, "application/gzip")]
    results += [_row(ctx, name, FITS) for name, _ in archive.listed]
    if save_as is not None:
        ctx.check()
        saved = save_as.save(ctx, manifest_bytes, f"stamps manifest of job {ctx.job_id} ({', '.join(q.surveys)})")
        with ctx.results.writer(ctx.job_id, SAVED_AS) as out:
            out.write(json.dumps(saved, indent=2).encode())
        results.append(_row(ctx, SAVED_AS, "application/json"))
    return results


def _scaled(st: Stamp, common: float | None) -> np.ndarray:
    """The stamp's data magnified so that its source's size becomes ``common`` (STACKSIZE), else as it is."""
    assert st.data is not None
    if common is None or st.source.size is None:
        return st.data
    return scale_about_centre(st.data, common / st.source.size)


def _row(ctx: RunContext, name: str, media: str) -> ResultRow:
    location = ctx.results.location(ctx.job_id, name)
    return ResultRow(ctx.job_id, name, location, media, ctx.results.size(location))


def _write(ctx: RunContext, q: StampParams, archive: _Archive, stamps: list[Stamp], names: dict[str, str],
           manifest: ManifestWriter, list_limit: int, expected: int | None) -> int:
    """Write one source's stamps (a file each, or one cube) and their manifest rows; the count made."""
    if q.format == "cube":
        data = cube_file(stamps)
        name = names[CUBE]
        if data is not None:
            archive.add(ctx, name, data, list_limit, expected)
        for s in stamps:
            manifest.add(manifest_row(s, name))
        return int(data is not None)
    made = 0
    for s in stamps:
        if s.ok:
            archive.add(ctx, names[s.survey], stamp_file(s), list_limit, expected)
            made += 1
        manifest.add(manifest_row(s, names[s.survey]))
    return made


def _add_stack(ctx: RunContext, archive: _Archive, survey: str, stacker: Stacker, surveys: list[SurveyRef],
               list_limit: int, common: float | None = None) -> None:
    if stacker.count == 0:
        return
    from astropy.io import fits

    stack, cover, header = stacker.result()
    header["SURVEY"] = survey
    if common is not None:
        header["STKSIZE"] = (common, "[deg] common source size each stamp was scaled to (STACKSIZE)")
    cov_header = fits.Header()
    cov_header["EXTNAME"] = "COVERAGE"
    cov_header["BUNIT"] = ("", "stamps with data at this pixel")
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(stack, header), fits.ImageHDU(cover, cov_header)]).writeto(buf)
    slug = next(s.slug for s in surveys if s.text == survey)
    name = f"stack_{slug}.fits"
    data = buf.getvalue()
    archive.add(ctx, name, data, list_limit, 0)
