"""The source-finding engine: tiles read through the seam, the finder run on each, one catalogue.

For every ID of a :class:`~vo.sfind.params.SfindParams`, the dataset is looked up for the job's
caller and cut through the cutout engine (:func:`vo.soda.open_cutout`: only the slab of the region
is read; a dataset the caller may not read is missing), turned into a 2D image
(:mod:`vo.sfind.image`) and searched by the app. Each tile's components get ICRS and Galactic
positions, their distance to the tile's edge and the nearest known source; tiles are stitched
(:mod:`vo.sfind.stitch`). No HTTP and no job SQL: :mod:`vo.jobs.sfind` writes the results.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import astropy.units as u
import numpy as np
import psycopg
import structlog
from astropy.coordinates import SkyCoord
from astropy.wcs.utils import proj_plane_pixel_scales, wcs_to_celestial_frame

from vo import soda
from vo.caller import Caller, Dataset
from vo.cutout import Cutout
from vo.errors import FatalError, NotFoundError, UsageError, VlkbError
from vo.sfind.catalog import Detections
from vo.sfind.finder import FinderImage, FinderOutput
from vo.sfind.image import prepare_image
from vo.sfind.params import SfindParams
from vo.sfind.registry import find_app
from vo.sfind.stitch import duplicates
from vo.sfind.xmatch import band_table, nearest_known

__all__ = ["SfindRun", "TileResult", "run_tiles"]

log = structlog.get_logger("vlkb.sfind")


@dataclass
class TileResult:
    """One tile searched: its image, what the finder gave, and the detections with positions."""

    did: str
    image: FinderImage
    output: FinderOutput
    detections: Detections
    band_table: str | None
    seconds: float


@dataclass
class SfindRun:
    """A whole run: the tiles, the stitched detections and the counts for the report."""

    tiles: list[TileResult]
    detections: Detections
    duplicates: int
    timings: dict[str, float] = field(default_factory=dict)


def _beam_area_sr(header: Mapping) -> float:
    return float(np.pi / (4 * np.log(2)) * np.deg2rad(header["BMAJ"]) * np.deg2rad(header.get("BMIN",
                                                                                              header["BMAJ"])))


def _flux_units(header: Mapping, flux: np.ndarray, err: np.ndarray) -> tuple[np.ndarray, np.ndarray, str, str]:
    """Integrated flux in Jy where the image unit allows (Jy/beam, MJy/sr), else image unit x beams."""
    bunit = str(header.get("BUNIT", "")).strip()
    key = bunit.lower().replace(" ", "")
    if key in ("jy/beam", "jy/bm"):
        return flux, err, "Jy", bunit
    if key == "mjy/sr":
        f = _beam_area_sr(header) * 1e6
        return flux * f, err * f, "Jy", bunit
    return flux, err, f"{bunit} beam".strip(), bunit


def _detections(image: FinderImage, out: FinderOutput, did: str) -> Detections:
    c = out.components
    wcs = image.wcs
    frame = wcs_to_celestial_frame(wcs)
    pos = SkyCoord(c.lon * u.deg, c.lat * u.deg, frame=frame)
    icrs, gal = pos.icrs, pos.galactic
    x, y = wcs.world_to_pixel_values(c.lon, c.lat)
    ny, nx = image.data.shape
    pixel = float(np.mean(proj_plane_pixel_scales(wcs)))
    edge = np.minimum.reduce([x + 0.5, nx - 0.5 - x, y + 0.5, ny - 0.5 - y]) * pixel
    flux, err, funit, punit = _flux_units(image.header, c.flux, c.err_flux)
    n = len(c)
    return Detections(c, icrs.ra.deg, icrs.dec.deg, gal.l.deg, gal.b.deg, flux, err, [funit] * n, [punit] * n,
                      [did] * n, edge, [""] * n, np.full(n, np.nan))


def _open_upload(path: Path, did: str, q: soda.SodaParams) -> Cutout:
    """The cut of an uploaded file: anything astropy cannot read as a FITS image is the user's problem."""
    try:
        with open(path, "rb") as f:
            if f.read(9) != b"SIMPLE  =":  # FITS 4.0 section 4.4.1.1: the first keyword of a primary header
                raise UsageError(f"UPLOAD {did.removeprefix('upload:')}: not a FITS file")
        return soda.cutout(path, did, q)
    except VlkbError:
        raise
    except Exception as exc:  # astropy raises many kinds for broken headers and data
        raise UsageError(f"UPLOAD {did.removeprefix('upload:')}: not a readable FITS image ({exc})") from None


def _one_tile(ds: Dataset | None, did: str, q: SfindParams, workdir: Path, *, max_pixels: int,
              upload: Path | None = None) -> TileResult:
    started = time.monotonic()
    raw = {"ID": [did], **q.cut}
    sq = soda.SodaParams.from_params(raw)
    cut = _open_upload(upload, did, sq) if upload is not None else soda.open_cutout(ds, sq)
    spectral = "BAND" in q.cut or "VELO" in q.cut
    image = prepare_image(cut, did, workdir, spectral_given=spectral, max_pixels=max_pixels)
    finder = find_app(q.app)
    try:
        out = finder.run(image, q.options)
    except VlkbError:
        raise
    except Exception as exc:  # the finder's own crash: the job ends in ERROR with its text
        log.error("finder crashed", app=q.app, did=did, exc_info=exc)
        raise FatalError(f"{finder.name} failed on {did}: {type(exc).__name__}: {exc}") from exc
    det = _detections(image, out, did)
    return TileResult(did, image, out, det, band_table(ds) if ds is not None else None, time.monotonic() - started)


#: modules the tile processes' fork server imports once, so a tile does not pay for them
_PRELOAD = ["vo.sfind.run", "vo.sfind.aegean", "vo.sfind.pybdsf", "AegeanTools.source_finder", "bdsf"]


def _tile_context() -> multiprocessing.context.BaseContext:
    # forkserver: the service and the Celery workers are threaded, and fork() of a threaded process
    # may deadlock (Python warns); spawn would re-import astropy and the finders for every job
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


def _tiles_in_processes(q: SfindParams, found: Mapping[str, Dataset], workdir: Path, *, max_pixels: int,
                        processes: int, done: Callable[[int, TileResult], None],
                        check: Callable[[], None], upload: Path | None = None) -> None:
    """Search the tiles in ``processes`` processes, calling ``done(index, tile)`` as each ends (in
    any order); the first failure, or a cancel seen by ``check``, stops the others at once.

    A ProcessPoolExecutor, not a multiprocessing.Pool: BANE starts processes of its own, which the
    daemonic workers of a Pool may not (Python 3.9 made the executor's workers non-daemonic)."""
    pool = ProcessPoolExecutor(processes, mp_context=_tile_context())
    try:
        pending: dict[Future[TileResult], int] = {}
        for n, did in enumerate(q.ids, start=1):
            tile_dir = workdir / f"tile-{n:04d}"
            tile_dir.mkdir(parents=True, exist_ok=True)
            pending[pool.submit(_one_tile, found.get(did), did, q, tile_dir, max_pixels=max_pixels,
                                upload=upload)] = n
        while pending:
            check()
            ended, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for fut in ended:
                n = pending.pop(fut)
                try:
                    done(n, fut.result())
                except (UsageError, NotFoundError) as exc:
                    _name_tile(exc, n, len(q.ids))
                    raise
    finally:
        # a cancelled or failed job stops its other tiles now: the executor has no public way to end
        # running work, so its worker processes are terminated (nothing is left once all are done)
        workers = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in workers:
            proc.terminate()
        for proc in workers:
            proc.join(timeout=10)


def _name_tile(exc: UsageError | NotFoundError, n: int, total: int) -> None:
    if total > 1:
        exc.message = f"tile {n} of {total}: {exc.message}"
        exc.args = (exc.message,)


def run_tiles(q: SfindParams, found: Mapping[str, Dataset], workdir: Path, *, caller: Caller,
              connect: Callable[[], psycopg.Connection], max_pixels: int, processes: int = 1,
              upload: Path | None = None,
              progress: Callable[[int, int], None] = lambda done, total: None,
              check: Callable[[], None] = lambda: None) -> SfindRun:
    """Search every tile of ``q`` (datasets already looked up for ``caller`` in ``found``), stitch, cross-match.

    The tiles are searched in ``processes`` processes at once (0: in this thread, for library use).
    Processes even for one tile: finders are CPU-bound Python with compiled fits that may hold the GIL,
    and in a thread of the service they compete with its event loop (HTTP answers, job heartbeats: on
    the loaded machine one bench job was reaped as dead); a process also ends at once on ABORT.
    A tile that cannot be searched (missing, outside the region, no WCS, ...) fails the job with its
    reason: a catalogue silently missing a tile would look complete when it is not.
    """
    started = time.monotonic()
    by_index: dict[int, TileResult] = {}

    def done(n: int, tile: TileResult) -> None:
        by_index[n] = tile
        progress(len(by_index), len(q.ids))
        log.info("sfind tile done", tile=n, tiles=len(q.ids), components=len(tile.detections))

    if processes >= 1:
        _tiles_in_processes(q, found, workdir, max_pixels=max_pixels, processes=min(processes, len(q.ids)),
                            done=done, check=check, upload=upload)
    else:
        for n, did in enumerate(q.ids, start=1):
            check()
            tile_dir = workdir / f"tile-{n:04d}"
            tile_dir.mkdir(parents=True, exist_ok=True)
            try:
                done(n, _one_tile(found.get(did), did, q, tile_dir, max_pixels=max_pixels, upload=upload))
            except (UsageError, NotFoundError) as exc:
                _name_tile(exc, n, len(q.ids))
                raise
    tiles = [by_index[n] for n in sorted(by_index)]
    search = time.monotonic() - started
    check()
    det = Detections.concat([t.detections for t in tiles])
    tile_of = np.concatenate([np.full(len(t.detections), k) for k, t in enumerate(tiles)] or [np.zeros(0, int)])
    beam = max(float(t.image.beam[0]) for t in tiles)
    drop = duplicates(det.glon, det.glat, tile_of, det.edge, beam)
    det = det.select(~drop)
    tile_of = tile_of[~drop]
    xm_started = time.monotonic()
    if q.xmatch:
        names, seps = list(det.match_name), det.match_sep.copy()
        with connect() as conn:
            for k, t in enumerate(tiles):
                if t.band_table is None:
                    continue
                sel = np.flatnonzero(tile_of == k)
                got_names, got_seps = nearest_known(conn, caller, t.band_table, det.glon[sel], det.glat[sel],
                                                    float(t.image.beam[0]))
                for i, name, sep in zip(sel, got_names, got_seps, strict=True):
                    names[i], seps[i] = name, sep
        det.match_name, det.match_sep = names, seps
    timings = {"search_s": round(search, 3), "xmatch_s": round(time.monotonic() - xm_started, 3),
               "total_s": round(time.monotonic() - started, 3)}
    return SfindRun(tiles, det, int(drop.sum()), timings)
