"""The SODA async runner: SODA parameters in, one FITS result per cut plus a manifest out.

Pure: no HTTP and no job SQL. Every (ID, region) pair is one cut, written as result
``cut-NNNN.fits``; with ``MERGE=true`` (and for ``/soda/merge/async`` jobs) every region is
one merged file ``merge-NNNN.fits`` of all the IDs. The ``manifest`` result is a VOTable
with a row per cut (result, ID, region, status, message, size), so a cut that fails (no
overlap, unknown ID) is reported there and the other cuts still complete. When no cut
succeeds the job ends in ERROR with the first cut's reason, so a one-cut job behaves as
``/soda/sync`` does.

Datasets are looked up with the access rules of ``db.datasets``: a dataset the job's caller
may not read is reported exactly like a missing one.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from astropy.io.votable import from_table
from astropy.table import Table

from db.jobs import ResultRow
from vo import soda
from vo.caller import Dataset, datasets_blocking
from vo.errors import NotFoundError, VlkbError
from vo.uws.context import RunContext

__all__ = ["CutEntry", "manifest_votable", "run_soda"]

FITS = "application/fits"
VOTABLE = "application/x-votable+xml"


@dataclass(frozen=True)
class CutEntry:
    """One row of the manifest."""

    result_id: str
    ids: str
    region: str
    status: str
    message: str = ""
    size: int = 0
    #: the failure itself, to end the job with when no cut succeeds
    error: VlkbError | None = field(default=None, compare=False)


def manifest_votable(entries: Sequence[CutEntry]) -> bytes:
    """The manifest as a VOTable: one row per cut, in request order."""
    table = Table(
        rows=[(e.result_id, e.ids, e.region, e.status, e.message, e.size) for e in entries] or None,
        names=("result_id", "id", "region", "status", "message", "size"),
        dtype=(str, str, str, str, str, "int64"),
    )
    descriptions = {
        "result_id": "the job result holding this cut (empty when the cut failed)",
        "id": "the publisher DID of the dataset cut (space-separated for a merge)",
        "region": "the SODA constraints of this cut",
        "status": "OK, or ERROR when the cut failed",
        "message": "why the cut failed (SODA error code and text)",
        "size": "bytes of the result",
    }
    for name, text in descriptions.items():
        table[name].description = text
    table["size"].unit = "byte"
    vot = from_table(table)
    buf = io.BytesIO()
    vot.to_xml(buf)
    return buf.getvalue()


def _failed(result_ids: str, region: str, exc: VlkbError) -> CutEntry:
    return CutEntry("", result_ids, region, "ERROR", f"{exc.code}: {exc.message}", error=exc)


def _cuts(q: soda.SodaJobParams, found: Mapping[str, Dataset], ctx: RunContext) -> list[CutEntry]:
    entries = []
    for n, one in enumerate(q.cuts(), start=1):
        ctx.check()
        result_id = f"cut-{n:04d}.fits"
        region = one.region_text()
        try:
            cut = soda.open_cutout(found.get(one.id), one)
            with ctx.results.writer(ctx.job_id, result_id) as out:
                for chunk in cut.chunks():
                    ctx.check()
                    out.write(chunk)
        except VlkbError as exc:
            entries.append(_failed(one.id, region, exc))
            continue
        entries.append(CutEntry(result_id, one.id, region, "OK", size=cut.size))
    return entries


def _merges(q: soda.SodaJobParams, found: Mapping[str, Dataset], ctx: RunContext,
            max_voxels: int) -> list[CutEntry]:
    datasets = [found[i] for i in q.ids if i in found]
    missing = [i for i in q.ids if i not in found]
    entries = [_failed(i, "", NotFoundError(f"{i}: no such dataset")) for i in missing]
    for n, region in enumerate(q.regions, start=1):
        ctx.check()
        assert region is not None  # SodaJobParams requires a region to merge
        text = q.region_text(region)
        result_id = f"merge-{n:04d}.fits"
        try:
            merged = soda.merge(datasets, q, region, max_voxels=max_voxels)
            ctx.check()
            with ctx.results.writer(ctx.job_id, result_id) as out:
                merged.hdulist().writeto(out)
        except VlkbError as exc:
            entries.append(_failed(" ".join(d.publisher_did for d in datasets), text, exc))
            continue
        size = ctx.results.size(ctx.results.location(ctx.job_id, result_id))
        entries.append(CutEntry(result_id, " ".join(merged.used), text, "OK", size=size))
        entries += [CutEntry("", did, text, "SKIPPED", reason) for did, reason in merged.skipped]
    return entries


def run_soda(params: Mapping[str, list[str]], ctx: RunContext, *, max_cuts: int, max_voxels: int,
             merge: bool | None = None) -> list[ResultRow]:
    """Run the job's cuts (or merges) into the results store; the manifest comes last.

    ``merge`` True forces merging (``/soda/merge/async``); None reads the ``MERGE`` parameter.
    Datasets are looked up for the job's owner with the groups they had at creation (``ctx.caller``):
    an ID the owner may not read is reported as not found, like a missing one.
    """
    q = soda.SodaJobParams.from_params(dict(params), merge=merge, max_cuts=max_cuts)
    with ctx.connect() as conn:
        found = datasets_blocking(conn, q.ids, ctx.caller)
    entries = _merges(q, found, ctx, max_voxels) if q.merge else _cuts(q, found, ctx)
    done = [e for e in entries if e.status == "OK"]
    if not done:
        # nothing to hand back: the job fails with the first reason, as /soda/sync would answer
        errors = [e.error for e in entries if e.error is not None]
        raise errors[-1] if q.merge and errors else errors[0]
    rows = [ResultRow(ctx.job_id, e.result_id, ctx.results.location(ctx.job_id, e.result_id), FITS, e.size)
            for e in done]
    return [*rows, ctx.result("manifest", VOTABLE, manifest_votable(entries))]
