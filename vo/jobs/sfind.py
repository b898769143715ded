"""The source-finding runner (``/sfind/async``): parameters in, catalogue and maps out.

Pure: no HTTP and no job SQL. The datasets are looked up for the job's owner with the groups
they had at creation (``ctx.caller``), so a dataset the owner may not read is missing, exactly
like one that does not exist. Scratch files live in a temporary directory removed whatever
happens; results are written only once every tile has been searched, so a failed or cancelled
job leaves no partial catalogue behind.

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
from vo.sfind.run import SfindRun, run_tiles
from vo.usertables import Limits
from vo.uws.context import RunContext

__all__ = ["UPLOAD_FILE", "run_sfind"]

log = structlog.get_logger("vlkb.sfind")

_TYPES = {"catalog": "application/x-votable+xml", "catalog-csv": "text/csv", "regions": "text/plain",
          "preview": "image/png", "report": "application/json"}
FITS = "application/fits"
#: the image sent with UPLOAD, kept with the job when it was created (never a result)
UPLOAD_FILE = "upload.fits"


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
              table_limits: Limits | None = None, tile_processes: int = 1) -> list[ResultRow]:
    """Search the job's images and write its results; see the module docstring. ``table_limits``:
    the user-table quota, which ``SAVE_AS`` needs (None: SAVE_AS refused); ``tile_processes``: how
    many tiles of the job are searched at once. Progress (``n of N tiles``) goes to the job's
    ``uws:jobInfo`` as tiles end."""
    started = time.monotonic()
    q = SfindParams.from_params(params, max_tiles=max_tiles)
    save_as = SaveAs.at_start(params, ctx, table_limits)
    found = {}
    if q.upload is None:
        with ctx.connect() as conn:
            found = datasets_blocking(conn, q.ids, ctx.caller)
    bound = log.bind(job_id=ctx.job_id, app=q.app)
    with tempfile.TemporaryDirectory(prefix="vlkb-sfind-") as tmp:
        upload = _upload(ctx, q, Path(tmp))
        def progress(n: int, total: int) -> None:
            bound.info("sfind progress", done=n, total=total)
            ctx.progress(f"{n} of {total} tiles")

        progress(0, len(q.ids))
        run = run_tiles(q, found, Path(tmp), caller=ctx.caller, connect=ctx.connect, max_pixels=max_pixels,
                        processes=tile_processes, upload=upload, progress=progress, check=ctx.check)
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
        assert table_limits is not None  # checked at the start
        report["saved_as"] = save_as.save(ctx, files["catalog"], table_limits,
                                          f"{finder.name} catalogue of {' '.join(q.ids)} (sfind job {ctx.job_id})")
    rows.append(ctx.result("report", _TYPES["report"], json.dumps(report, indent=2, default=float).encode()))
    return rows


def _upload(ctx: RunContext, q: SfindParams, tmp: Path) -> Path | None:
    """The uploaded image copied to ``tmp`` (the finders and the cutout engine read files)."""
    if q.upload is None:
        return None
    location = ctx.results.location(ctx.job_id, UPLOAD_FILE)
    if not ctx.results.exists(location):
        raise UsageError(f"UPLOAD {q.upload}: no file was sent with the job (send it as the part the UPLOAD "
                         "parameter names, with the request that creates the job)")
    path = tmp / UPLOAD_FILE
    with open(path, "wb") as out:
        for chunk in ctx.results.read(location):
            out.write(chunk)
    return path

