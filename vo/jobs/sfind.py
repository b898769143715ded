"""The source-finding runner (``/sfind/async``): parameters in, catalogue and maps out.

Pure: no HTTP and no job SQL. The datasets are looked up for the job's owner with the groups
they had at creation (``ctx.caller``), so a dataset the owner may not read is missing, exactly
like one that does not exist. Scratch files live in a temporary directory removed whatever
happens; results are written only once every tile has been searched, so a failed or cancelled
job leaves no partial catalogue behind. Each tile is a part of the job (:data:`TILE_PART`,
:meth:`~vo.uws.context.RunContext.fan_out`): the tiles of one job are searched at once by every
process running jobs (this one included), and come back in the order given.

``UPLOAD=image,param:part``: the FITS image sent with the job (kept as ``upload.fits`` by the router,
never a result) is searched instead of archived datasets; it is checked here, so a file that is no
FITS image, has no celestial WCS or no finite pixel ends the job in ERROR with the reason.

Results: ``catalog`` (VOTable), ``catalog-csv``, ``regions`` (DS9, Galactic), ``rms``,
``background`` and ``residual`` (FITS with the tile's WCS; with several tiles one of each per
tile, suffixed ``-NNNN``), ``preview`` (PNG of the first tile) and ``report`` (JSON provenance).

``SAVE_AS=user_<name>.<table>`` (:mod:`vo.jobs.save_as`) keeps the ``catalog`` as a user table:
the name is checked before any pixel is read, the table is created once the other results are
written, and the ``report`` (written last) records it under ``saved_as``.
"""

from __future__ import annotations

import io
import json
import platform
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import structlog
from astropy.io import fits

from db.jobs import ResultRow
from vo.caller import datasets_blocking
from vo.errors import UsageError
from vo.jobs.save_as import SaveAs
from vo.sfind.catalog import catalog_csv, catalog_table, catalog_votable, ds9_regions
from vo.sfind.params import SfindParams
from vo.sfind.preview import preview_png
from vo.sfind.registry import find_app
from vo.sfind.run import SfindRun, TileResult, TileTask, run_tiles, search_tile
from vo.usertables import Limits
from vo.uws.context import RunContext

__all__ = ["TILE_PART", "UPLOAD_FILE", "run_sfind", "search_part"]

log = structlog.get_logger("vlkb.sfind")

_TYPES = {"catalog": "application/x-votable+xml", "catalog-csv": "text/csv", "regions": "text/plain",
          "preview": "image/png", "report": "application/json"}
FITS = "application/fits"
#: the image sent with UPLOAD, kept with the job when it was created (never a result)
UPLOAD_FILE = "upload.fits"
#: the part function searching one tile (:func:`search_part`, registered in app/jobs.py)
TILE_PART = "sfind.tile"


def _fits(data: np.ndarray, header: fits.Header, what: str) -> bytes:
    h = header.copy()
    h["COMMENT"] = f"vlkb source finding: {what} map"
    buf = io.BytesIO()
    fits.PrimaryHDU(data.astype(np.float32), h).writeto(buf)
    return buf.getvalue()


def _report(q: SfindParams, run: SfindRun, started: float) -> dict[str, object]:
    finder = find_app(q.app)
    det = run.detections
    matched = sum(1 for m in det.match_name if m)
    return {
        "app": finder.name, "version": finder.version(), "options": q.options,
        "inputs": [{"id": t.did, "region": t.image.header.get("VLKBREG", "whole dataset"),
                    "shape": list(t.image.data.shape), "components": len(t.detections),
                    "band_table": t.band_table, "seconds": round(t.seconds, 3), **t.output.notes} for t in run.tiles],
        "region": {k: v for k, v in q.cut.items()},
        "progress": f"{len(run.tiles)} of {len(q.ids)} tiles",
        "counts": {"components": len(det), "duplicates_removed": run.duplicates, "matched": matched,
                   "new": len(det) - matched if q.xmatch else None},
        "crossmatch": q.xmatch,
        "timings": {**run.timings, "job_s": round(time.monotonic() - started, 3)},
        "python": platform.python_version(),
    }


def run_sfind(params: Mapping[str, list[str]], ctx: RunContext, *, max_tiles: int, max_pixels: int,
              table_limits: Limits | None = None) -> list[ResultRow]:
    """Search the job's images and write its results; see the module docstring. ``table_limits``:
    the user-table quota, which ``SAVE_AS`` needs (None: SAVE_AS refused; the quota kept with the
    job, ``ctx.terms``, comes first). Progress (``n of N tiles``) goes to the job's ``uws:jobInfo``
    as tiles come back."""
    started = time.monotonic()
    q = SfindParams.from_params(params, max_tiles=max_tiles)
    save_as = SaveAs.at_start(params, ctx, table_limits)
    found = {}
    if q.upload is None:
        with ctx.connect() as conn:
            found = datasets_blocking(conn, q.ids, ctx.caller)
    bound = log.bind(job_id=ctx.job_id, app=q.app)
    with tempfile.TemporaryDirectory(prefix="vlkb-sfind-") as tmp:
        _upload_location(ctx, q)  # a missing upload fails the job before any tile is sent

        def progress(n: int, total: int) -> None:
            bound.info("sfind progress", done=n, total=total)
            ctx.progress(f"{n} of {total} tiles")

        progress(0, len(q.ids))
        run = run_tiles(q, found, Path(tmp), caller=ctx.caller, connect=ctx.connect, max_pixels=max_pixels,
                        search=lambda tasks: ctx.fan_out(TILE_PART, tasks, window=len(q.ids)),
                        progress=progress, check=ctx.check)
        ctx.check()
        table = catalog_table(run.detections, q.app)
        finder = find_app(q.app)
        files: dict[str, bytes] = {
            "catalog": catalog_votable(table, {"app": finder.name, "version": finder.version(),
                                               "datasets": " ".join(q.ids)}),
            "catalog-csv": catalog_csv(table),
            "regions": ds9_regions(table),
        }
        multi = len(run.tiles) > 1
        for k, t in enumerate(run.tiles, start=1):
            suffix = f"-{k:04d}" if multi else ""
            for name, plane in (("rms", t.output.rms), ("background", t.output.background),
                                ("residual", t.output.residual)):
                if plane is not None:
                    files[name + suffix] = _fits(plane, t.image.header, name)
        first = run.tiles[0]
        mine = np.asarray([d == first.did for d in table["dataset"]], dtype=bool)
        frame = first.image.header["CTYPE1"][:4]
        lon, lat = (table["glon"], table["glat"]) if frame == "GLON" else (table["ra"], table["dec"])
        files["preview"] = preview_png(
            first.image.data, first.image.header, np.asarray(lon)[mine], np.asarray(lat)[mine],
            np.asarray(table["a"])[mine], np.asarray(table["b"])[mine], np.asarray(table["pa"])[mine],
            f"{finder.name}: {int(mine.sum())} components in {first.did}")
        report = _report(q, run, started)
    ctx.check()
    rows = [ctx.result(name, _TYPES.get(name, FITS), data) for name, data in files.items()]
    if save_as is not None:
        report["saved_as"] = save_as.save(ctx, files["catalog"],
                                          f"{finder.name} catalogue of {' '.join(q.ids)} (sfind job {ctx.job_id})")
    rows.append(ctx.result("report", _TYPES["report"], json.dumps(report, indent=2, default=float).encode()))
    return rows


def search_part(task: TileTask, ctx: RunContext) -> TileResult:
    """The part function: search one tile in a scratch directory of this process."""
    with tempfile.TemporaryDirectory(prefix="vlkb-sfind-") as tmp:
        upload = None
        if (location := _upload_location(ctx, task.q)) is not None:
            upload = Path(tmp) / UPLOAD_FILE
            with open(upload, "wb") as out:
                for chunk in ctx.results.read(location):
                    out.write(chunk)
        return search_tile(task, Path(tmp), upload)


def _upload_location(ctx: RunContext, q: SfindParams) -> str | None:
    """Where the uploaded image is in the results store (None: no UPLOAD; the finders and the cutout
    engine read files, so a part copies it to its scratch directory)."""
    if q.upload is None:
        return None
    location = ctx.results.location(ctx.job_id, UPLOAD_FILE)
    if not ctx.results.exists(location):
        raise UsageError(f"UPLOAD {q.upload}: no file was sent with the job (send it as the part the UPLOAD "
                         "parameter names, with the request that creates the job)")
    return location
