"""Postage stamps: stamps per second of the stamps runner against a plain astropy loop.

Builds (once) under ``var/bench/stamps`` a private cluster with the demo data, draws ``--sources``
random positions over the demo tiles (|l| < 0.3, |b| < 0.25; radius ``--radius`` degrees) and
makes their stamps on three surveys (Hi-GAL 70, 160 and 250 um), measuring in the same run:

- one stamps job (``/stamps/async`` with the table as ``SOURCES``: ``vo/jobs/stamps.py``, coverage
  lookups in PostgreSQL, slab reads, unit conversion, a FITS file per stamp into a tar.gz) on one
  and on two worker processes of the job engine (``vlkb serve`` with ``VLKB_WORKERS=1`` and ``=2``,
  one job slot each: the job's 200-source chunks are parts, ``vo/uws/parts.py``, made by both
  processes), wall time from the request to COMPLETED; then, on ``--regrid-sources`` sources, with
  ``REGRID=true`` (reproject's adaptive resampler, flux-conserving, from the kept tiles'
  slabs: ``vo/stamps/regrid.py``) against the loop measured again on those sources;
- the baseline: a plain loop over the same files with the tiles' WCS known in advance and every
  file opened once (memory-mapped): for each source and survey, the first tile holding the
  position, ``astropy.nddata.Cutout2D``, ``reproject_interp`` onto a grid centred on the source,
  the unit factor, and ``writeto`` into memory.

Prints stamps/s, the ratio to the baseline and the ratio of two workers to one.

    python -m bench.stamps [--sources 10000] [--radius 0.01]
"""

from __future__ import annotations

import argparse
import io
import os
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import Cutout2D
from astropy.wcs import WCS
from reproject import reproject_interp

from bench.server import demo_cluster, serve

ROOT = Path(__file__).resolve().parent.parent
SURVEYS = ("Hi-GAL/70 um", "Hi-GAL/160 um", "Hi-GAL/250 um")
SLUGS = ("hi-gal-70um", "hi-gal-160um", "hi-gal-250um")


def _table(n: int, seed: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lon, lat = rng.uniform(-0.3, 0.3, n), rng.uniform(-0.25, 0.25, n)
    rows = (f"b{i},{lo % 360:.6f},{la:.6f}\n" for i, (lo, la) in enumerate(zip(lon, lat, strict=True)))
    text = "name,glon,glat\n" + "".join(rows)
    return text.encode(), lon, lat


def _runner(home: Path, db_port: int, table: bytes, radius: float, regrid: bool, workers: int) -> float:
    """One stamps job over ``table`` on ``workers`` worker processes (``vlkb serve``, one slot each): seconds."""
    data = {"SURVEY": list(SURVEYS), "SIZE": str(radius), "REGRID": "true" if regrid else "false", "PHASE": "RUN"}
    with serve(home, db_port, workers=str(workers), local_concurrency="1") as (base, _):
        # warm-up: a small job (imports, first tiles), so the figure is the job's own work
        small = b"\n".join(table.splitlines()[:3]) + b"\n"
        _wait(base, httpx.post(base + "/stamps/async", data=data, files={"SOURCES": ("s.csv", small)}, timeout=60))
        t0 = time.perf_counter()
        _wait(base, httpx.post(base + "/stamps/async", data=data, files={"SOURCES": ("s.csv", table)}, timeout=600))
        return time.perf_counter() - t0


def _wait(base: str, created: httpx.Response) -> None:
    if created.status_code != 303:
        raise SystemExit(f"job refused: {created.status_code} {created.text[:300]}")
    url = created.headers["location"]
    url = base + url if url.startswith("/") else url
    while (phase := httpx.get(url + "/phase", timeout=60).text) in ("PENDING", "QUEUED", "EXECUTING"):
        httpx.get(url, params={"WAIT": "30"}, timeout=60)
    if phase != "COMPLETED":
        raise SystemExit(f"{url} ended {phase}: {httpx.get(url + '/error').text[:300]}")


def _baseline(data_dir: Path, lon: np.ndarray, lat: np.ndarray, radius: float) -> float:
    """The plain loop (see the module text): seconds."""
    tiles = []
    for slug in SLUGS:
        opened = []
        for path in sorted((data_dir / slug).glob("*.fits")):
            hdul = fits.open(path, memmap=True)
            opened.append((hdul[0].data, WCS(hdul[0].header), hdul[0].header))
        tiles.append(opened)
    t0 = time.perf_counter()
    for lo, la in zip(lon, lat, strict=True):
        pos = SkyCoord(lo * u.deg, la * u.deg, frame="galactic")
        grid = None
        for opened in tiles:
            found = next((tile for tile in opened if tile[1].footprint_contains(pos)), None)
            if found is None:
                continue
            data, wcs, header = found
            cut = Cutout2D(data, pos, 2 * radius * u.deg, wcs=wcs, mode="partial")
            if grid is None:  # the first survey's cut defines the source's grid, as a loop would do
                grid = cut.wcs.deepcopy()
                shape = cut.data.shape
            values, _ = reproject_interp((cut.data, cut.wcs), grid, shape_out=shape)
            pix_sr = abs(header["CDELT1"] * header["CDELT2"]) * (np.pi / 180) ** 2
            out = values * 1e6 * pix_sr
            buf = io.BytesIO()
            fits.PrimaryHDU(out.astype(np.float32), grid.to_header()).writeto(buf)
    return time.perf_counter() - t0


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stamps", description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=10_000)
    parser.add_argument("--radius", type=float, default=0.01)
    parser.add_argument("--regrid-sources", type=int, default=1000,
                        help="sources of the REGRID runs (0: none)")
    parser.add_argument("--home", type=Path, default=ROOT / "var" / "bench" / "stamps")
    args = parser.parse_args(argv)
    home = args.home.resolve()
    if os.geteuid() == 0:
        home.parent.mkdir(parents=True, exist_ok=True)
        home.parent.chmod(0o755)
    cluster, _ = demo_cluster(home)
    try:
        table, lon, lat = _table(args.sources, seed=1)
        stamps = args.sources * len(SURVEYS)
        print(f"{args.sources} sources x {len(SURVEYS)} surveys, radius {args.radius} deg, "
              f"load {os.getloadavg()[0]:.2f} (a shared machine: compare the ratios, not the rates)")
        base = _baseline(home / "data", lon, lat, args.radius)
        print(f"{'plain loop (Cutout2D + reproject_interp)':<48} {stamps / base:8.1f} stamps/s")
        port = cluster.current_port()
        took: dict[int, float] = {}
        for workers in (1, 2):
            took[workers] = _runner(home, port, table, args.radius, False, workers)
            label = f"one stamps job, {workers} worker process(es)"
            print(f"{label:<48} {stamps / took[workers]:8.1f} stamps/s  x{base / took[workers]:.2f} the loop  "
                  f"load {os.getloadavg()[0]:.2f}")
        print(f"{'one job, 2 worker processes / 1':<48} x{took[1] / took[2]:.2f} faster")
        if args.regrid_sources:
            table, lon, lat = _table(args.regrid_sources, seed=2)
            stamps = args.regrid_sources * len(SURVEYS)
            base = _baseline(home / "data", lon, lat, args.radius)
            print(f"REGRID, {args.regrid_sources} sources: plain loop {stamps / base:.1f} stamps/s")
            for workers in (1, 2):
                secs = _runner(home, port, table, args.radius, True, workers)
                label = f"stamps runner, {workers} worker(s), REGRID"
                print(f"{label:<48} {stamps / secs:8.1f} stamps/s  x{base / secs:.2f} the loop  "
                      f"load {os.getloadavg()[0]:.2f}")
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
