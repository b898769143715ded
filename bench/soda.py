"""SODA cutouts and merges over HTTP: big-cube cutouts, concurrent small cutouts, merges, memory.

Builds (once) under ``var/bench/soda`` a private cluster and generated FITS files: a 2 GiB
cube (1024 x 1024 x 512 float32, 6" pixels, a VRAD axis), four overlapping 1024 x 1024
images and two overlapping 256 x 256 x 128 cubes, ingests them as three surveys, starts
``vlkb serve`` on them, and prints:

- a 0.1 degree cutout (``CIRCLE`` of radius 0.05 deg, every channel) of the big cube through
  ``/soda/sync`` (read by httpx and by the standard library's lean client), against reading just
  those bytes with a numpy memmap (the baseline: the file mapped afresh, as a script would), the
  same copy from a mapping kept open, and opening the file with astropy (``memmap=False``) and
  slicing the full data, all measured in this run, the paths taken in turns;
- the median time of a 0.05 deg circle cut of a 120 x 120 x 80 cube at one client, with and
  without a velocity range (issue 16), against a bare memmap read of the same slab;
- cutouts/s of small cutouts (0.01 deg, 32 channels) with 1 and 8 concurrent clients;
- ``/soda/merge`` of the four images and of the two cubes: seconds;
- the server's RSS after start, after the cutouts and after the merges.

Timings are medians of repeated runs with a warm page cache (the file is read once first, in
order: see ``_settle``): the comparison is of the work each path does, not of the disk.

    python -m bench.soda [--repeat 5] [--requests 400] [--small-only [--before DIR --rounds N]]
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import psycopg
from astropy.coordinates import SkyCoord
from astropy.io import fits

from bench.server import proc_mb, serve, start_cluster
from db.cluster import EmbeddedCluster
from vo.cutout import CutRequest, plan
from vo.ingest.datasets import ingest_datasets
from vo.shapes import Circle, Interval

ROOT = Path(__file__).resolve().parent.parent
PIXEL = 6 / 3600  # deg
REST = 110_201_354_300.0
AUTHORITY = "vlkb.bench"


def _write(path: Path, nx: int, ny: int, nz: int, lc: float, bc: float, seed: int) -> Path:
    """A FITS file written plane by plane (never the whole array in memory)."""
    if path.exists():
        return path
    h = fits.Header()
    h["SIMPLE"] = True
    h["BITPIX"] = -32
    h["NAXIS"] = 3 if nz else 2
    h["NAXIS1"], h["NAXIS2"] = nx, ny
    if nz:
        h["NAXIS3"] = nz
    h.update(CTYPE1="GLON-CAR", CTYPE2="GLAT-CAR", CUNIT1="deg", CUNIT2="deg", CDELT1=-PIXEL, CDELT2=PIXEL,
             CRPIX1=(nx + 1) / 2, CRPIX2=(ny + 1) / 2 - bc / PIXEL, CRVAL1=lc, CRVAL2=0.0, BMAJ=3 * PIXEL,
             BMIN=3 * PIXEL, BPA=0.0, BUNIT="K" if nz else "MJy/sr", MJD_OBS=55000.0)
    h.rename_keyword("MJD_OBS", "MJD-OBS")
    if nz:
        h.update(CTYPE3="VRAD", CUNIT3="m/s", CRVAL3=-50000.0, CDELT3=200.0, CRPIX3=1.0, SPECSYS="LSRK", RESTFRQ=REST)
    else:
        h.update(WAVELENG=1.6e-4)
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".part")
    with open(tmp, "wb") as out:
        out.write(h.tostring(padding=True).encode("ascii"))
        for _ in range(max(nz, 1)):
            out.write(rng.standard_normal((ny, nx), dtype=np.float32).astype(">f4").tobytes())
        size = nx * ny * max(nz, 1) * 4
        out.write(b"\0" * (-size % 2880))
    tmp.rename(path)
    return path


def _prepare(home: Path) -> tuple[EmbeddedCluster, dict[str, list[str]], dict[str, list[Path]]]:
    data = home / "data"
    data.mkdir(parents=True, exist_ok=True)
    files = {
        "BIGCUBE": [_write(data / "bigcube.fits", 1024, 1024, 512, 30.0, 0.0, 1)],
        "IMAGES": [_write(data / f"image{k}.fits", 1024, 1024, 0, 30.0 + dl, db, 10 + k)
                   for k, (dl, db) in enumerate([(-0.75, -0.75), (0.75, -0.75), (-0.75, 0.75), (0.75, 0.75)])],
        "CUBES": [_write(data / f"cube{k}.fits", 256, 256, 128, 30.0 + dl, 0.0, 20 + k)
                  for k, dl in enumerate([-0.2, 0.2])],
        "SMALLCUBE": [_write(data / "smallcube.fits", 120, 120, 80, 30.0, 0.0, 30)],
    }
    cluster, url = start_cluster(home)
    dids: dict[str, list[str]] = {}
    with psycopg.connect(url) as conn:
        for name, paths in files.items():
            cube = name != "IMAGES"
            survey = {"name": f"BENCH-{name}", "species": "13CO" if cube else "Continuum",
                      "transition": "1-0" if cube else "160 um", "rest_frequency": REST if cube else None,
                      "velocity_unit": "m/s" if cube else None, "dataproduct_type": "cube" if cube else "image"}
            ingest_datasets(conn, survey, paths, authority=AUTHORITY)
            conn.commit()
            dids[name] = [r[0] for r in conn.execute(
                "SELECT publisher_did FROM vlkb.datasets WHERE path = ANY(%s) ORDER BY path",
                ([str(p) for p in paths],)).fetchall()]
    return cluster, dids, files


def _median(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up: page cache, imports, connection
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _interleaved(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median seconds of each path, the paths taken in turn in every round.

    Timed one after the other, two paths see different moments of a shared machine (another
    process waking, the CPU clock changing): in turns, a drift lands on every path alike, so
    their ratio holds even when the absolute figures move between runs.
    """
    for fn in fns.values():
        fn()  # warm-up: page cache, imports, connection
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def _big_cutout(client: httpx.Client, did: str, path: Path, repeat: int) -> None:
    centre = SkyCoord(30.1, 0.05, unit="deg", frame="galactic")
    params = {"ID": did, "CIRCLE": f"{centre.l.deg} {centre.b.deg} 0.05", "POSSYS": "GALACTIC"}
    cut = plan(path, CutRequest(region=Circle(lon=30.1, lat=0.05, radius=0.05), frame="galactic"))
    slices = cut.slices()
    mb = cut.data_bytes / 1e6
    with fits.open(path, memmap=True, lazy_load_hdus=True) as hdul:
        offset = hdul[0]._data_offset
        shape = hdul[0].shape
    url = client.build_request("GET", "/soda/sync", params=params).url
    lean = http.client.HTTPConnection(url.host, url.port)
    buffer = bytearray(1 << 20)
    kept = np.memmap(path, dtype=">f4", mode="r", offset=offset, shape=shape)

    def with_httpx() -> None:
        size = 0
        with client.stream("GET", "/soda/sync", params=params) as resp:
            resp.raise_for_status()
            for chunk in resp.iter_raw(1 << 20):
                size += len(chunk)
        assert size == cut.size

    def with_stdlib() -> None:
        # the standard library's client reading into one buffer: what a lean client (curl, a
        # C program, pyvo's requests with a large chunk) spends, so the service's share shows
        lean.request("GET", url.raw_path.decode())
        resp = lean.getresponse()
        size = 0
        while n := resp.readinto(buffer):
            size += n
        assert resp.status == 200 and size == cut.size

    def memmap() -> None:
        arr = np.memmap(path, dtype=">f4", mode="r", offset=offset, shape=shape)
        np.ascontiguousarray(arr[slices])
        del arr

    def memmap_kept() -> None:
        np.ascontiguousarray(kept[slices])

    as_found = _median(memmap, repeat)
    _settle(path)
    t = _interleaved({"memmap": memmap, "kept": memmap_kept, "httpx": with_httpx, "stdlib": with_stdlib},
                     repeat)
    # the service's own time without the baseline's fresh mapping between requests (its page faults
    # and TLB misses slow the next request's copy too): one request after another
    t_row = _median(with_stdlib, max(100, repeat))
    lean.close()
    t_full = _median(lambda: _astropy_full(path, slices), max(1, repeat // 5))
    t_mm = t["memmap"]
    print(f"\n== 0.1 degree cutout of a {path.stat().st_size / 2**30:.1f} GiB cube "
          f"(box {' x '.join(str(n) for n in cut.shape)}, {mb:.1f} MB; median of {repeat}, paths in turns) ==")
    print(f"{'numpy memmap of the slab, page cache as found':<44} {as_found * 1000:9.1f} ms  "
          "(not the baseline: see below)")
    print(f"{'numpy memmap of the slab (baseline)':<44} {t_mm * 1000:9.1f} ms  ratio 1.00  "
          "(after the file's pages were read back in order)")
    print(f"{'/soda/sync over HTTP, read by httpx':<44} {t['httpx'] * 1000:9.1f} ms  ratio {t['httpx'] / t_mm:.2f}")
    print(f"{'/soda/sync over HTTP, read by http.client':<44} {t['stdlib'] * 1000:9.1f} ms  "
          f"ratio {t['stdlib'] / t_mm:.2f}")
    print(f"{'the same, requests back to back':<44} {t_row * 1000:9.1f} ms  ratio {t_row / t_mm:.2f}")
    print(f"{'the slab from a mapping kept open':<44} {t['kept'] * 1000:9.1f} ms  ratio {t['kept'] / t_mm:.2f}"
          "  (the copy alone, without mapping the pages)")
    print(f"{'astropy open (no memmap) + slice':<44} {t_full * 1000:9.1f} ms  ratio {t_full / t_mm:.2f}"
          f"  ({t_full / t['httpx']:.0f}x the service)")


def _settle(path: Path) -> None:
    """Drop the file's pages from the page cache and read them back in order.

    What mapping a page costs depends on how it came into the page cache: pages read in order
    come in large folios, which one fault maps many of; pages faulted in one by one (a cut's rows,
    or after the kernel reclaimed some) come singly. On the machine of issue 16 the same fresh
    memmap read of the slab took 3.6 ms after this and 12-16 ms before it, hours apart. The service
    keeps its mapping, so its own time hardly changes; the baseline is taken in the state where it
    is cheapest (a file just copied or read whole), which is the strictest comparison.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        while os.read(fd, 1 << 23):
            pass
    finally:
        os.close(fd)


def _astropy_full(path: Path, slices: tuple[slice, ...]) -> None:
    with fits.open(path, memmap=False) as hdul:
        np.ascontiguousarray(hdul[0].data[slices])


def _small_cube(client: httpx.Client, did: str, path: Path, repeat: int) -> None:
    """0.05 deg circle on the 120 x 120 x 80 cube, one client, with and without a velocity range."""
    print("\n== 0.05 degree circle on a 120 x 120 x 80 cube, one client (median of "
          f"{repeat} after a warm-up, paths in turns) ==")
    for label, extra, velo in (("all channels", {}, None), ("VELO -45 -40 km/s", {"VELO": "-45 -40"},
                                                              Interval(lo=-45.0, hi=-40.0))):
        params = {"ID": did, "CIRCLE": "30.0 0.0 0.05", "POSSYS": "GALACTIC", **extra}
        cut = plan(path, CutRequest(region=Circle(lon=30.0, lat=0.0, radius=0.05), frame="galactic", velo=velo))

        def http(params=params, cut=cut) -> None:
            r = client.get("/soda/sync", params=params)
            r.raise_for_status()
            assert len(r.content) == cut.size

        def memmap(cut=cut) -> None:
            with fits.open(path, memmap=True, lazy_load_hdus=True) as hdul:
                offset = hdul[0]._data_offset
                shape = hdul[0].shape
            arr = np.memmap(path, dtype=">f4", mode="r", offset=offset, shape=shape)
            np.ascontiguousarray(arr[cut.slices()])
            del arr

        t = _interleaved({"http": http, "memmap": memmap}, repeat)
        t_http, t_mm = t["http"], t["memmap"]
        print(f"{label:<20} box {' x '.join(str(n) for n in cut.shape):<12} /soda/sync {t_http * 1000:7.2f} ms   "
              f"bare memmap read {t_mm * 1000:6.2f} ms")


def _small_cutouts(client: httpx.Client, dids: Sequence[str], requests: int) -> None:
    rng = np.random.default_rng(5)
    params = [{"ID": dids[0], "CIRCLE": f"{30 + rng.uniform(-0.7, 0.7):.4f} {rng.uniform(-0.7, 0.7):.4f} 0.01",
               "POSSYS": "GALACTIC", "PIXELS": "[*] [*] [100:131]"} for _ in range(requests)]

    def one(p: dict[str, str]) -> float:
        t0 = time.perf_counter()
        client.get("/soda/sync", params=p).raise_for_status()
        return time.perf_counter() - t0

    print("\n== small cutouts (0.01 deg, 32 channels) of the big cube ==")
    for clients in (1, 8):
        t0 = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            lat = sorted(pool.map(one, params))
        wall = time.perf_counter() - t0
        print(f"{clients} client(s): {requests / wall:7.1f} cutouts/s  p50 {statistics.median(lat) * 1000:6.1f} ms"
              f"  p99 {lat[int(0.99 * (len(lat) - 1))] * 1000:6.1f} ms")


def _merges(client: httpx.Client, dids: dict[str, list[str]], repeat: int) -> None:
    print("\n== /soda/merge ==")
    cases = [("4 images 1024x1024, 0.6 deg overlaps", dids["IMAGES"], "RANGE 28.5 31.5 -1.5 1.5"),
             ("2 cubes 256x256x128", dids["CUBES"], "RANGE 29.6 30.4 -0.2 0.2")]
    for label, ids, region in cases:
        params = [("ID", i) for i in ids] + [("POS", region), ("POSSYS", "GALACTIC")]
        last: list[httpx.Response] = []

        def run(params=params, last=last) -> None:
            r = client.get("/soda/merge", params=params)
            r.raise_for_status()
            last[:] = [r]

        secs = _median(run, repeat)
        shape = fits.open(io.BytesIO(last[0].content))[0].data.shape
        print(f"{label:<40} {secs:7.2f} s  output {' x '.join(map(str, reversed(shape)))}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.soda", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--home", type=Path, default=ROOT / "var" / "bench" / "soda")
    parser.add_argument("--small-only", action="store_true", help="the 120x120x80 cube and the big cube's cut only")
    parser.add_argument("--workers", default="1", help="VLKB_WORKERS of the server")
    parser.add_argument("--before", type=Path, help="with --small-only: also serve the vlkb source tree in DIR "
                        "(git worktree add DIR <commit>), alternating with this one (and this one with "
                        "VLKB_DATASET_LOOKUP_TTL=0), for before/after figures")
    parser.add_argument("--rounds", type=int, default=1, help="with --before: alternate this many times")
    args = parser.parse_args(argv)
    home = args.home.resolve()
    if os.geteuid() == 0:
        home.parent.mkdir(parents=True, exist_ok=True)
        home.parent.chmod(0o755)
    cluster, dids, files = _prepare(home)
    if args.before is not None and args.small_only:
        try:
            # "after" as configured by default, and with every cut looked up in the database
            # (no recent lookups kept: vo/lookups.py), so the share of each change shows
            variants = (("before", args.before, {}), ("after", None, {}),
                        ("after, VLKB_DATASET_LOOKUP_TTL=0", None, {"dataset_lookup_ttl": "0"}))
            for _ in range(args.rounds):
                for tag, code, extra in variants:
                    with serve(home, cluster.current_port(), code=code, workers=args.workers, **extra) as (base, _), \
                            httpx.Client(base_url=base, timeout=600) as client:
                        print(f"\n### {tag}: load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
                        _small_cube(client, dids["SMALLCUBE"][0], files["SMALLCUBE"][0], max(args.repeat, 51))
                        _big_cutout(client, dids["BIGCUBE"][0], files["BIGCUBE"][0], args.repeat)
        finally:
            cluster.stop()
        return
    try:
        with serve(home, cluster.current_port(), merge_max_voxels="40000000", workers=args.workers) as (base, server):
            rss0 = proc_mb(server.pid)
            anon0 = proc_mb(server.pid, "RssAnon:")
            with httpx.Client(base_url=base, timeout=600) as client:
                print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
                _small_cube(client, dids["SMALLCUBE"][0], files["SMALLCUBE"][0], max(args.repeat, 51))
                _big_cutout(client, dids["BIGCUBE"][0], files["BIGCUBE"][0], args.repeat)
                if args.small_only:
                    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
                    return
                _small_cutouts(client, dids["BIGCUBE"], args.requests)
                rss1 = proc_mb(server.pid)
                anon1 = proc_mb(server.pid, "RssAnon:")
                _merges(client, dids, max(1, args.repeat // 2))
                rss2 = proc_mb(server.pid)
            print(f"\nserver RSS: {rss0:.0f} MB at start, {rss1:.0f} MB after the cutouts of the "
                  f"{files['BIGCUBE'][0].stat().st_size / 2**30:.1f} GiB cube, {rss2:.0f} MB after the merges "
                  f"(peak {proc_mb(server.pid, 'VmHWM:'):.0f} MB)")
            # RSS counts the mapped pages of the cube (kernel page cache, shared and reclaimable, kept
            # mapped across requests by vo/cutout/source.py); the service's own memory is RssAnon
            print(f"server RssAnon (its own memory): {anon0:.0f} MB at start, {anon1:.0f} MB after the cutouts")
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
