"""The source-finding engine: tiles read through the seam, the finder run on each, one catalogue.

For every ID of a :class:`~vo.sfind.params.SfindParams`, the dataset is looked up for the job's
caller and cut through the cutout engine (:func:`vo.soda.open_cutout`: only the slab of the region
is read; a dataset the caller may not read is missing), turned into a 2D image
(:mod:`vo.sfind.image`) and searched by the app. Each tile's components get ICRS and Galactic
positions, their distance to the tile's edge and the nearest known source; tiles are stitched
(:mod:`vo.sfind.stitch`). No HTTP and no job SQL: :mod:`vo.jobs.sfind` writes the results, and
has the tiles searched as parts of the job by any process running jobs (:class:`TileTask`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
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

__all__ = ["SfindRun", "TileResult", "TileTask", "run_tiles", "search_tile"]

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


@dataclass(frozen=True)
class TileTask:
    """One tile to search, all a process needs besides the files: tile ``n`` of ``total``, its dataset
    (looked up for the job's caller; None for an upload or a dataset the caller may not read)."""

    n: int
    total: int
    did: str
    dataset: Dataset | None
    q: SfindParams
    max_pixels: int


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


#: one search at a time in a process: tiles are parts run in threads of the processes
#: running jobs, and finders are not thread-safe (AegeanTools keeps the image being searched in module
#: globals: two tiles at once in one process failed with its UnboundLocalError). The parallelism of a
#: job comes from processes, and a finder holds the GIL for most of its work anyway.
_FINDER_LOCK = threading.Lock()


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
        with _FINDER_LOCK:
            out = finder.run(image, q.options)
    except VlkbError:
        raise
    except Exception as exc:  # the finder's own crash: the job ends in ERROR with its text
        log.error("finder crashed", app=q.app, did=did, exc_info=exc)
        raise FatalError(f"{finder.name} failed on {did}: {type(exc).__name__}: {exc}") from exc
    det = _detections(image, out, did)
    return TileResult(did, image, out, det, band_table(ds) if ds is not None else None, time.monotonic() - started)


def search_tile(task: TileTask, workdir: Path, upload: Path | None = None) -> TileResult:
    """Search one tile in ``workdir``; a tile that cannot be searched raises with its number."""
    try:
        return _one_tile(task.dataset, task.did, task.q, workdir, max_pixels=task.max_pixels, upload=upload)
    except (UsageError, NotFoundError) as exc:
        _name_tile(exc, task.n, task.total)
        raise


def _name_tile(exc: UsageError | NotFoundError, n: int, total: int) -> None:
    if total > 1:
        exc.message = f"tile {n} of {total}: {exc.message}"
        exc.args = (exc.message,)


def run_tiles(q: SfindParams, found: Mapping[str, Dataset], workdir: Path, *, caller: Caller,
              connect: Callable[[], psycopg.Connection], max_pixels: int,
              search: Callable[[Iterable[TileTask]], Iterator[TileResult]] | None = None,
              upload: Path | None = None,
              progress: Callable[[int, int], None] = lambda done, total: None,
              check: Callable[[], None] = lambda: None) -> SfindRun:
    """Search every tile of ``q`` (datasets already looked up for ``caller`` in ``found``), stitch, cross-match.

    ``search`` gives the result of each task in order: a job's runner has them searched as parts of
    the job by every process running jobs (:mod:`vo.jobs.sfind`); None: one after the other in this
    thread (``upload``: the uploaded image's file), for library use.
    A tile that cannot be searched (missing, outside the region, no WCS, ...) fails the job with its
    reason: a catalogue silently missing a tile would look complete when it is not.
    """
    started = time.monotonic()
    tasks = [TileTask(n, len(q.ids), did, found.get(did), q, max_pixels) for n, did in enumerate(q.ids, start=1)]

    def here(tasks: Iterable[TileTask]) -> Iterator[TileResult]:
        for task in tasks:
            check()
            tile_dir = workdir / f"tile-{task.n:04d}"
            tile_dir.mkdir(parents=True, exist_ok=True)
            yield search_tile(task, tile_dir, upload)

    by_index: dict[int, TileResult] = {}
    for task, tile in zip(tasks, (search or here)(tasks), strict=True):
        by_index[task.n] = tile
        progress(len(by_index), len(q.ids))
        log.info("sfind tile done", tile=task.n, tiles=len(q.ids), components=len(tile.detections))
    tiles = [by_index[n] for n in sorted(by_index)]
    searched = time.monotonic() - started
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
    timings = {"search_s": round(searched, 3), "xmatch_s": round(time.monotonic() - xm_started, 3),
               "total_s": round(time.monotonic() - started, 3)}
    return SfindRun(tiles, det, int(drop.sum()), timings)
