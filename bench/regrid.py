"""REGRID resamplers on the demo data: time per stamp and flux error against the generator's truth.

Writes the demo files (once, under ``--data``) and takes the brightest isolated catalogue sources
of Hi-GAL 70, 160 and 250 um (no neighbour brighter than 0.5% of them within 4 FWHM). For each
candidate resampler it makes each source's ``REGRID`` stamp (``BKG=median``, Jy/pixel) from the
tile holding it, on the band's own pixel and on a grid 2x coarser, with the job path of
``vo/stamps/regrid.py`` (a kept tile, its slab resampled, the file from the tile's template), and
prints the time of a stamp and the error of the aperture flux (1.5 FWHM) against the catalogue:

- ``reproject_exact`` (the spherical-polygon overlap, used before), its core and its public entry;
- ``reproject_adaptive`` with its default Gaussian kernel and with the Hann kernel (the one kept),
  core and public entry (which makes a temporary directory per call);
- ``reproject_interp`` (bilinear, point sampling: what the baseline loop of bench/stamps.py uses).

    python -m bench.regrid [--per-band 8]
"""

from __future__ import annotations

import argparse
import io
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from reproject import reproject_adaptive, reproject_exact
from reproject.adaptive._core import _reproject_adaptive_2d
from reproject.interpolation._core import _reproject_full
from reproject.spherical_intersect._core import _reproject_celestial

import vo.stamps.regrid as regrid_module
import vo.stamps.stamp as stamp_module
from db.datasets import Dataset
from demo import DEFAULT_SEED, generate
from demo.sky import make_sky
from demo.structures import make_structures
from vo.stamps.output import stamp_file
from vo.stamps.regrid import RegridTiles, make_stamps
from vo.stamps.stamp import Options, Source

ROOT = Path(__file__).resolve().parent.parent
BANDS = {"70": "hi-gal-70um", "160": "hi-gal-160um", "250": "hi-gal-250um"}
Resampler = Callable[[np.ndarray, WCS, WCS], np.ndarray]


def _core(fn: Callable[..., np.ndarray]) -> Resampler:
    def resample(data: np.ndarray, wcs: WCS, grid: WCS) -> np.ndarray:
        shape = (grid.pixel_shape[1], grid.pixel_shape[0])
        return np.asarray(fn(np.ascontiguousarray(data, dtype=float), wcs, grid, shape, array_out=np.empty(shape),
                             return_footprint=False), dtype=float)
    return resample


def _public(fn: Callable[..., tuple[np.ndarray, np.ndarray]], **kw: object) -> Resampler:
    def resample(data: np.ndarray, wcs: WCS, grid: WCS) -> np.ndarray:
        return np.asarray(fn((data, wcs), grid, shape_out=(grid.pixel_shape[1], grid.pixel_shape[0]), **kw)[0])
    return resample


CANDIDATES: dict[str, Resampler] = {
    "reproject_exact, core (before)": _core(_reproject_celestial),
    "reproject_exact, public": _public(reproject_exact, parallel=False),
    "reproject_adaptive gaussian, core": _core(lambda *a, **k: _reproject_adaptive_2d(*a, **k, roundtrip_coords=False)),
    "reproject_adaptive hann, core (kept)": _core(
        lambda *a, **k: _reproject_adaptive_2d(*a, **k, roundtrip_coords=False, kernel="hann")),
    "reproject_adaptive hann, public": _public(reproject_adaptive, kernel="hann", roundtrip_coords=False),
    "reproject_interp bilinear, core": _core(lambda *a, **k: _reproject_full(*a, **k, order=1)),
}


def _isolated(cat: dict[str, np.ndarray], count: int) -> list[int]:
    inside = np.flatnonzero((np.abs(cat["l"]) < 0.55) & (np.abs(cat["b"]) < 0.4))
    chosen: list[int] = []
    for i in inside[np.argsort(-cat["flux"][inside])]:
        d = np.hypot((cat["l"] - cat["l"][i]) * np.cos(np.radians(cat["b"][i])), cat["b"] - cat["b"][i]) * 3600
        d[i] = np.inf
        if not (cat["flux"][d < 4 * max(cat["fwhma"][i], 10.0)] > 0.005 * cat["flux"][i]).any():
            chosen.append(int(i))
        if len(chosen) == count:
            break
    return chosen


def _aperture(hdu: fits.PrimaryHDU, l: float, b: float, radius_arcsec: float) -> float:  # noqa: E741
    wcs = WCS(hdu.header)
    x0, y0 = wcs.world_to_pixel_values(l % 360.0, b)
    y, x = np.mgrid[0:hdu.data.shape[0], 0:hdu.data.shape[1]]
    inside = np.hypot(x - x0, y - y0) <= radius_arcsec / (abs(hdu.header["CDELT2"]) * 3600)
    return float(np.sum(hdu.data[inside], dtype=np.float64))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.regrid", description=__doc__.splitlines()[0])
    parser.add_argument("--per-band", type=int, default=8, help="sources per band")
    parser.add_argument("--data", type=Path, default=ROOT / "var" / "bench" / "regrid")
    args = parser.parse_args(argv)
    if not (args.data / BANDS["250"]).is_dir():
        generate(args.data)
    warnings.simplefilter("ignore")  # FITSFixedWarning of the demo headers
    sky = make_sky(DEFAULT_SEED, 1, make_structures(DEFAULT_SEED, 1))
    cases = []
    for band, slug in BANDS.items():
        t = sky.tables[f"compactsources.band{band}um"]
        lon = np.asarray(t["glon"], dtype=float)
        cat = {"l": np.where(lon > 180, lon - 360, lon), "b": np.asarray(t["glat"], dtype=float),
               "flux": np.asarray(t["flux"], dtype=float), "fwhma": np.asarray(t["fwhma"], dtype=float)}
        tiles = []
        for path in sorted((args.data / slug).glob("*.fits")):
            header = fits.getheader(path)
            ds = Dataset(publisher_did=f"ivo://bench/{path.name}", survey=slug, path=str(path), size=None,
                         dataproduct_type="image", em_min=None, em_max=None, t_min=None, t_max=None, pol_states=None,
                         vel_min=None, vel_max=None, s_ra=None, s_dec=None, s_fov=None, s_region=None,
                         s_region_galactic=None)
            tiles.append((ds, WCS(header), header["NAXIS1"], header["NAXIS2"], abs(header["CDELT2"])))
        for i in _isolated(cat, args.per_band):
            l, b, fwhm = cat["l"][i], cat["b"][i], cat["fwhma"][i]  # noqa: E741
            radius = 3.6 * max(fwhm, 10.0) / 3600
            for ds, wcs, nx, ny, pixel in tiles:
                x, y = wcs.world_to_pixel_values(l % 360, b)
                margin = 1.6 * radius / pixel + 3
                if margin < x < nx - margin and margin < y < ny - margin:
                    cases.append((Source(f"{band}-{i}", l % 360, b, radius), ds, pixel, fwhm, cat["flux"][i]))
                    break
    print(f"{len(cases)} sources (Hi-GAL 70/160/250 um); flux error |aperture / catalogue - 1|: median, max, "
          "and stamps within 2%")
    print(f"{'resampler':<38} {'ms/stamp':>8}   {'band pixel':>22}   {'2x coarser':>22}")
    for name, fn in CANDIDATES.items():
        stamp_module.resample = regrid_module.resample = fn  # type: ignore[assignment]
        errors: list[list[float]] = [[], []]
        seconds, made = 0.0, 0
        for src, ds, pixel, fwhm, flux in cases:
            for k, grid_pixel in enumerate((None, 2 * pixel)):
                opts = Options(regrid=True, bkg="median", pixel=grid_pixel)
                kept = RegridTiles()
                make_stamps(src, [("s", [ds], [])], opts, kept)  # the tile's first stamp: its template
                t0 = time.perf_counter()
                st = make_stamps(src, [("s", [ds], [])], opts, kept)[0]
                data = stamp_file(st)
                seconds += time.perf_counter() - t0
                made += 1
                hdu = fits.open(io.BytesIO(data))[0]
                errors[k].append(abs(_aperture(hdu, src.l, src.b, 1.5 * fwhm) / flux - 1))
        cells = [f"{np.median(e):6.2%} {max(e):6.2%} {sum(x < 0.02 for x in e):3d}/{len(e)}" for e in errors]
        print(f"{name:<38} {seconds / made * 1e3:8.2f}   {cells[0]:>22}   {cells[1]:>22}")


if __name__ == "__main__":
    main()
