"""Building the HiPS of a 2D sub-survey from its datasets, with reproject's HiPS writer.

The datasets of a sub-survey are read as one caller (the builder passes a reader of the survey:
anonymous for a public one, its groups for a restricted one), mosaicked onto a Galactic grid at the
finest input resolution (``reproject_and_coadd``), then cut into HiPS tiles by
``reproject.hips.reproject_to_hips`` (FITS tiles and every lower order). reproject writes FITS tiles
only for array input, so the PNG tiles, the ``Allsky`` previews and ``Moc.fits`` are written here
from those FITS tiles with one fixed grey stretch per survey (HiPS 1.0 section 4.2-4.3).

A build goes to a temporary directory next to the target and replaces it with a rename, so the
service never serves a half-built HiPS. It is skipped when the ``vlkb_source_digest`` property of
the HiPS already on disk matches the datasets (DID, location, size and version of every file):
re-running ``vlkb hips build`` after an ingest rebuilds only the sub-surveys whose files changed.
Within a sub-survey, a build **updates only the tiles of the datasets that changed** (added,
re-ingested or removed) when the mosaic's grid is the one the HiPS was built on: the deepest-order
tiles within reach of those datasets' footprints (old and new, kept beside the HiPS in
``.<slug>.sources.json``) are reprojected again, then their parents at every lower order, their PNGs,
the Allsky and the MOC; every other tile is kept as it is. A new grid (a dataset that extends the
mosaic, a finer resolution) or ``--force`` rebuilds the whole HiPS.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import Galactic
from astropy.io import fits
from astropy.wcs import WCS
from psycopg_pool import AsyncConnectionPool

from db.datasets import Dataset
from db.footprints import footprints
from vo import storage
from vo.caller import Caller, datasets, session, surveys
from vo.ingest.obscore import survey_slug

__all__ = [
    "BuildReport", "HipsSource", "build_all", "build_survey", "hips_sources", "read_properties", "write_properties",
]

#: HiPS tile width (pixels): the HiPS 1.0 default, and what Aladin expects without being told
TILE_WIDTH = 512
#: Allsky previews (HiPS 1.0 section 4.3.2): order 3 tiles reduced to 64 pixels, 27 per row
_ALLSKY_ORDER, _ALLSKY_TILE, _ALLSKY_COLUMNS = 3, 64, 27


@dataclass(frozen=True)
class HipsSource:
    """A 2D sub-survey a caller may read, and its image datasets."""

    slug: str
    name: str
    species: str
    transition: str
    description: str
    datasets: tuple[Dataset, ...] = field(default=())

    @property
    def title(self) -> str:
        return f"{self.name} {self.transition}" if self.species == "Continuum" else \
            f"{self.name} {self.species} {self.transition}"


@dataclass(frozen=True)
class BuildReport:
    """What one build did: the HiPS order, its tile count, the time it took, or that it was current."""

    slug: str
    datasets: int
    order: int
    tiles: int
    seconds: float
    skipped: bool
    #: tiles written again when only some datasets changed (None: the whole HiPS was built)
    updated: int | None = None


async def hips_sources(pool: AsyncConnectionPool, caller: Caller) -> list[HipsSource]:
    """The 2D sub-surveys ``caller`` may read, with their image datasets (cubes are not HiPS here)."""
    rows = await surveys(pool, caller)
    async with session(pool, caller) as conn:
        prints = await footprints(conn)
    by_band: dict[tuple[str, str], list[str]] = {}
    for fp in prints:
        by_band.setdefault((fp.survey, fp.band), []).append(fp.did)
    found = await datasets(pool, [fp.did for fp in prints], caller)
    out = []
    for s in rows:
        dids = by_band.get((s["name"], f"{s['species']} | {s['transition']}"), [])
        images = tuple(found[d] for d in dids if d in found and found[d].dataproduct_type == "image")
        if images:
            out.append(HipsSource(survey_slug(s["name"], s["species"], s["transition"]), s["name"], s["species"],
                                  s["transition"], s["description"] or "", images))
    return out


def source_digest(ds: tuple[Dataset, ...]) -> str:
    """What a HiPS is made of: every dataset's DID, file location, size and version (mtime, ETag)."""
    h = hashlib.sha256()
    for d in sorted(ds, key=lambda d: d.publisher_did):
        info = storage.file_info(d.path)
        h.update(f"{d.publisher_did}\n{d.path}\n{info.size}\n{info.version}\n".encode())
    return h.hexdigest()[:32]


def _dataset_digest(d: Dataset) -> str:
    info = storage.file_info(d.path)
    return hashlib.sha256(f"{d.publisher_did}\n{d.path}\n{info.size}\n{info.version}\n".encode()).hexdigest()[:32]


def _reach(wcs: WCS, shape: tuple[int, ...]) -> list[float]:
    """``[l, b, radius]`` (degrees) of a circle holding an image: its centre and farthest corner."""
    ny, nx = shape[-2:]
    points = wcs.pixel_to_world([-0.5, nx - 0.5, -0.5, nx - 0.5, (nx - 1) / 2],
                                [-0.5, -0.5, ny - 0.5, ny - 0.5, (ny - 1) / 2]).galactic
    centre = points[4]
    return [float(centre.l.deg), float(centre.b.deg), float(centre.separation(points[:4]).max().deg)]


def _grid(wcs: WCS, shape: tuple[int, ...]) -> str:
    """What identifies a mosaic's pixel grid: the same grid gives the same tiles from the same pixels."""
    return hashlib.sha256(f"{wcs.to_header_string()}{tuple(shape)}".encode()).hexdigest()[:32]


def _tile_path(root: Path, order: int, npix: int) -> Path:
    return root / f"Norder{order}" / f"Dir{npix // 10000 * 10000}" / f"Npix{npix}.fits"


def _touched(order: int, circles: list[list[float]]) -> list[int]:
    """The deepest-order tiles that overlap ``circles`` (``[l, b, radius]``), even partly (astropy-healpix's
    cone search, as reproject finds the tiles of an image)."""
    from astropy_healpix import HEALPix

    hp = HEALPix(nside=2**order, order="nested", frame=Galactic())
    out: set[int] = set()
    for lon, lat, radius in circles:
        out |= {int(i) for i in hp.cone_search_lonlat(lon * u.deg, lat * u.deg, radius * u.deg)}
    return sorted(out)


def _update_tiles(root: Path, array: np.ndarray, wcs: WCS, order: int, indices: list[int]) -> list[Path]:
    """Reproject the deepest-order tiles ``indices`` of the HiPS at ``root`` again from the mosaic, then
    their parents at every lower order; the tile files written (their PNGs are the caller's).

    reproject has no public call that updates some tiles of a HiPS: its tile header, trimmed FITS writer
    and lower-order builder are used here as ``reproject_to_hips`` uses them, so the tiles are the
    ones a whole build gives (tested against a forced rebuild).
    """
    from reproject import reproject_interp
    from reproject.hips._high_level import compute_lower_resolution_tiles
    from reproject.hips._trim_utils import fits_writeto_withtrim
    from reproject.hips._utils import tile_header

    frame = Galactic()
    written = []
    for npix in indices:
        path = _tile_path(root, order, npix)
        path.unlink(missing_ok=True)
        path.with_suffix(".png").unlink(missing_ok=True)
        header = tile_header(level=order, index=npix, frame=frame, tile_dims=TILE_WIDTH)
        if isinstance(header, tuple):  # a tile on the border of the HPX projection: two halves
            out1, foot1 = reproject_interp((array, wcs), header[0])
            out2, foot2 = reproject_interp((array, wcs), header[1])
            with np.errstate(invalid="ignore"):
                out = (np.nan_to_num(out1) * foot1 + np.nan_to_num(out2) * foot2) / (foot1 + foot2)
            foot, header = (foot1 + foot2) / 2, header[0]
        else:
            out, foot = reproject_interp((array, wcs), header)
        if np.all(foot == 0):
            continue
        out[foot == 0] = np.nan
        path.parent.mkdir(parents=True, exist_ok=True)
        fits_writeto_withtrim(str(path), out, header)
        written.append(path)
    parents = []
    for level in range(order - 1, -1, -1):
        for npix in np.unique(np.asarray(indices, dtype=np.int64) // 4 ** (order - level)):
            path = _tile_path(root, level, int(npix))
            path.unlink(missing_ok=True)  # the lower-order builder does not overwrite
            path.with_suffix(".png").unlink(missing_ok=True)
            parents.append(path)
    compute_lower_resolution_tiles(output_directory=str(root), ndim=2, frame=frame, tile_format="fits",
                                   tile_size=TILE_WIDTH, tile_depth=1, spatial_level=order, level_depth=None,
                                   indices=list(indices))
    for path in parents:  # a parent whose children are all gone is written blank: none in a whole build
        if path.exists() and not np.isfinite(fits.getdata(path)).any():
            path.unlink()
        elif path.exists():
            written.append(path)
    return written


def read_properties(path: Path) -> dict[str, str]:
    """A HiPS ``properties`` file (``key = value`` lines, ``#`` comments) as a dict."""
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def write_properties(path: Path, props: dict[str, str]) -> None:
    path.write_text("".join(f"{k:<24}= {v}\n" for k, v in props.items()), encoding="utf-8")


def _image(ds: Dataset) -> tuple[np.ndarray, WCS]:
    """The 2D pixels (float32, degenerate axes dropped) and celestial WCS of an image dataset."""
    with storage.open_fits(ds.path) as hdul:
        hdu = next(h for h in hdul if h.is_image and h.data is not None and h.data.ndim >= 2)
        data = np.asarray(np.squeeze(hdu.data), dtype=np.float32)
        wcs = WCS(hdu.header).celestial
    if data.ndim != 2:
        raise ValueError(f"{ds.publisher_did}: not a 2D image (shape {data.shape})")
    return data, wcs


def _mosaic(images: list[tuple[np.ndarray, WCS]]) -> tuple[np.ndarray, WCS]:
    """One Galactic image of all ``images`` at the finest of their resolutions (overlaps averaged)."""
    from reproject import reproject_interp
    from reproject.mosaicking import find_optimal_celestial_wcs, reproject_and_coadd

    if len(images) == 1 and images[0][1].wcs.ctype[0].startswith("GLON"):
        return images[0]
    scale = min(min(abs(s.to_value(u.deg)) for s in w.proj_plane_pixel_scales()) for _, w in images)
    wcs, shape = find_optimal_celestial_wcs(images, frame=Galactic(), projection="CAR", resolution=scale * u.deg)
    array, cover = reproject_and_coadd(images, wcs, shape_out=shape, reproject_function=reproject_interp,
                                       combine_function="mean")
    array = np.asarray(array, dtype=np.float32)
    array[cover == 0] = np.nan
    return array, wcs


def _cuts(array: np.ndarray) -> tuple[float, float]:
    """The grey stretch of a survey: its 0.5 and 99.5 percentiles (the HiPS ``hips_pixel_cut``)."""
    finite = array[np.isfinite(array)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(finite, [0.5, 99.5])
    return float(lo), float(hi if hi > lo else lo + 1.0)


def _grey(data: np.ndarray, cuts: tuple[float, float]) -> np.ndarray:
    """An RGBA uint8 picture of a FITS tile: asinh stretch between ``cuts``, NaN transparent, rows
    flipped (FITS tiles start at the bottom row, PNG tiles at the top: HiPS 1.0 section 4.2.2)."""
    lo, hi = cuts
    with np.errstate(invalid="ignore"):
        x = np.clip((data - lo) / (hi - lo), 0.0, 1.0)
        v = np.arcsinh(50 * x) / np.arcsinh(50)
    grey = np.nan_to_num(v * 255).astype(np.uint8)
    rgba = np.stack([grey, grey, grey, np.where(np.isfinite(data), 255, 0).astype(np.uint8)], axis=-1)
    return rgba[::-1]


def _tile_files(root: Path) -> dict[int, list[tuple[int, Path]]]:
    """FITS tiles by order: ``{order: [(npix, path), ...]}``."""
    out: dict[int, list[tuple[int, Path]]] = {}
    for path in root.glob("Norder*/Dir*/Npix*.fits"):
        out.setdefault(int(path.parent.parent.name[6:]), []).append((int(path.stem[4:]), path))
    return out


def _write_pngs(tiles: dict[int, list[tuple[int, Path]]], cuts: tuple[float, float]) -> None:
    from PIL import Image

    for entries in tiles.values():
        for _, path in entries:
            Image.fromarray(_grey(fits.getdata(path), cuts), "RGBA").save(path.with_suffix(".png"), optimize=False)


def _write_allsky(root: Path, tiles: dict[int, list[tuple[int, Path]]], cuts: tuple[float, float]) -> bool:
    """``Norder3/Allsky.{fits,png}``: every order-3 tile reduced to 64x64, 27 per row, left to right
    from the top (HiPS 1.0 section 4.3.2); False when the HiPS has no order 3."""
    if _ALLSKY_ORDER not in tiles:
        return False
    from PIL import Image

    n = 12 * 4**_ALLSKY_ORDER
    rows = math.ceil(n / _ALLSKY_COLUMNS)
    t = _ALLSKY_TILE
    sky = np.full((rows * t, _ALLSKY_COLUMNS * t), np.nan, dtype=np.float32)  # top row first (PNG order)
    for npix, path in tiles[_ALLSKY_ORDER]:
        data = fits.getdata(path).astype(np.float32)
        f = data.shape[0] // t
        with np.errstate(invalid="ignore"), np.testing.suppress_warnings() as sup:
            sup.filter(RuntimeWarning)
            small = np.nanmean(data.reshape(t, f, t, f), axis=(1, 3))
        r, c = divmod(npix, _ALLSKY_COLUMNS)
        sky[r * t:(r + 1) * t, c * t:(c + 1) * t] = small[::-1]
    Image.fromarray(_grey(sky[::-1], cuts), "RGBA").save(root / f"Norder{_ALLSKY_ORDER}" / "Allsky.png")
    fits.writeto(root / f"Norder{_ALLSKY_ORDER}" / "Allsky.fits", sky[::-1], overwrite=True)
    return True


def _write_moc(root: Path, tiles: dict[int, list[tuple[int, Path]]], order: int) -> None:
    """``Moc.fits``: the tiles of the deepest order as a MOC in the HiPS frame (``COORDSYS = 'G'``, as
    HiPSgen writes it). Aladin draws only the tiles of this MOC, so it must be in the frame of the tiles."""
    from mocpy import MOC

    cells = np.array(sorted(n for n, _ in tiles[order]), dtype=np.uint64)
    moc = MOC.from_healpix_cells(cells, np.full(cells.shape, order, dtype=np.uint8), max_depth=order)
    path = root / "Moc.fits"
    moc.save(path, format="fits", overwrite=True)
    with fits.open(path, mode="update") as hdul:
        hdul[1].header["COORDSYS"] = ("G", "Galactic: the frame of the HiPS tiles")


def build_survey(source: HipsSource, root: Path, *, authority: str, public: bool, force: bool = False) -> BuildReport:
    """Build (or rebuild) the HiPS of ``source`` at ``root/<slug>``; a no-op when it is current."""
    from reproject import reproject_interp
    from reproject.hips import reproject_to_hips

    started = time.perf_counter()
    target = root / source.slug
    digest = source_digest(source.datasets)
    if not force and (target / "properties").exists():
        props = read_properties(target / "properties")
        if props.get("vlkb_source_digest") == digest:
            return BuildReport(source.slug, len(source.datasets), int(props.get("hips_order", 0)),
                               sum(len(v) for v in _tile_files(target).values()), 0.0, skipped=True)
    root.mkdir(parents=True, exist_ok=True)
    building = root / f".{source.slug}.building-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    record_path = root / f".{source.slug}.sources.json"
    images = {d.publisher_did: _image(d) for d in source.datasets}
    array, wcs = _mosaic(list(images.values()))
    each = {d.publisher_did: {"digest": _dataset_digest(d), "reach": _reach(images[d.publisher_did][1],
                                                                        images[d.publisher_did][0].shape)}
            for d in source.datasets}
    record: dict[str, Any] = {"grid": _grid(wcs, array.shape), "datasets": each}
    record_text = json.dumps(record)
    old = _read_record(record_path, target) if not force else None
    if old is not None and old["grid"] == record["grid"]:
        props = read_properties(target / "properties")
        order = int(props["hips_order"])
        lo, hi = (float(v) for v in props["hips_pixel_cut"].split())
        cuts = (lo, hi)
        changed = [v["reach"] for did, v in old["datasets"].items() if record["datasets"].get(did) != v]
        changed += [v["reach"] for did, v in record["datasets"].items() if old["datasets"].get(did) != v]
        shutil.copytree(target, building)
        written = _update_tiles(building, array, wcs, order, _touched(order, changed))
        tiles = _tile_files(building)
        _write_pngs({0: [(0, p) for p in written]}, cuts)
        allsky = _write_allsky(building, tiles, cuts)
        updated = len(written)
    else:
        cuts = _cuts(array)
        reproject_to_hips((array, wcs), coord_system_out="galactic", reproject_function=reproject_interp,
                          output_directory=str(building), tile_size=TILE_WIDTH)
        tiles = _tile_files(building)
        _write_pngs(tiles, cuts)
        allsky = _write_allsky(building, tiles, cuts)
        props = read_properties(building / "properties")
        order = int(props["hips_order"])
        updated = None
    _write_moc(building, tiles, order)
    finite = array[np.isfinite(array)]
    props.update({
        "creator_did": f"ivo://{authority}/hips/{source.slug}",
        "obs_title": source.title,
        "obs_description": source.description or source.title,
        "obs_collection": source.name,
        "hips_creator": f"ivo://{authority}",
        "hips_tile_format": "png fits",
        "hips_order_min": "0",
        "hips_pixel_cut": f"{cuts[0]:.6g} {cuts[1]:.6g}",
        "hips_data_range": f"{float(finite.min()) if finite.size else 0:.6g} "
                           f"{float(finite.max()) if finite.size else 0:.6g}",
        "hips_status": "public master clonableOnce" if public else "private master unclonable",
        "hips_tile_count": str(sum(len(v) for v in tiles.values())),
        "hips_allsky": "yes" if allsky else "no",
        "vlkb_source_digest": digest,
        # ties the record of what the tiles were made from (beside the HiPS) to this very build
        "vlkb_source_record": hashlib.sha256(record_text.encode()).hexdigest()[:32],
    })
    write_properties(building / "properties", props)
    previous = root / f".{source.slug}.old-{os.getpid()}"
    if target.exists():
        target.rename(previous)
    building.rename(target)
    shutil.rmtree(previous, ignore_errors=True)
    record_path.write_text(record_text, encoding="utf-8")
    return BuildReport(source.slug, len(source.datasets), order, sum(len(v) for v in tiles.values()),
                       time.perf_counter() - started, skipped=False, updated=updated)


def _read_record(path: Path, hips: Path) -> dict | None:
    """What the HiPS at ``hips`` was built from (grid, each dataset's digest and reach); None if unknown
    or not the record of that very build (e.g. a build stopped between the swap and the record)."""
    try:
        text = path.read_text(encoding="utf-8")
        props = read_properties(hips / "properties")
        record = json.loads(text)
    except (OSError, ValueError):
        return None
    if props.get("vlkb_source_record") != hashlib.sha256(text.encode()).hexdigest()[:32]:
        return None
    return record if isinstance(record, dict) and "grid" in record and "datasets" in record else None


async def build_all(pool: AsyncConnectionPool, root: Path, restricted: dict[str, tuple[str, ...]], *, authority: str,
                    only: str | None = None, force: bool = False,
                    progress: Callable[[BuildReport], None] | None = None) -> list[BuildReport]:
    """Build the HiPS of every 2D sub-survey (or of those whose slug or survey name is ``only``).

    Public sub-surveys are read as an anonymous caller; each restricted survey (``restricted``: its
    name to its groups, from its policy) as one of its readers, so a HiPS holds exactly what its
    readers may see. ``progress`` is told of each sub-survey when it is done. Pixel work runs in a thread.
    """
    plan = [(src, True) for src in await hips_sources(pool, Caller())]
    for survey, groups in restricted.items():
        plan += [(src, False) for src in await hips_sources(pool, Caller(groups=groups)) if src.name == survey]
    reports = []
    for src, public in plan:
        if only is not None and only.lower() not in (src.slug, src.name.lower()):
            continue
        report = await asyncio.to_thread(build_survey, src, root, authority=authority, public=public, force=force)
        if progress is not None:
            progress(report)
        reports.append(report)
    return reports
