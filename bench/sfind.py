"""Source finding through the service against calling the finder directly, and jobs on 1 and 2 workers.

Builds (once) under ``var/bench/sfind`` a private cluster with the demo data, starts ``vlkb serve``,
and prints, per app:

- megapixels per second of one job over a region of an ASKAP-EMU demo tile (``/sfind/async``, wall
  time from creation to COMPLETED, results written) against the same finder called directly on the
  same cut image in this process, measured in the same run: the ratio is the service's overhead;
- four single-tile jobs submitted together with ``VLKB_LOCAL_CONCURRENCY=1`` and ``=2``: seconds and
  the speed-up. (A four-tile *job* searches its tiles one after the other in one worker: tiles of one
  job are not spread over workers yet.)

    python -m bench.sfind [--apps aegean,pybdsf] [--radius 0.15]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import psycopg

from bench.server import serve, start_cluster
from db.cluster import EmbeddedCluster
from vo.cutout import CutRequest, plan
from vo.sfind.image import prepare_image
from vo.sfind.options import validate_options
from vo.sfind.registry import find_app
from vo.shapes import Circle

ROOT = Path(__file__).resolve().parent.parent
CENTRE = (0.383, 0.289)  # a region of ASKAP-EMU tile 3


def _prepare(home: Path) -> tuple[EmbeddedCluster, list[tuple[str, str]]]:
    from demo.load import load_demo

    cluster, url = start_cluster(home)
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT publisher_did, path FROM vlkb.datasets WHERE path LIKE %s ORDER BY 1",
                            ("%askap-emu%",)).fetchall()
        if len(rows) < 4:
            load_demo(conn, home / "data", scale=1, authority="vlkb.bench")
            conn.commit()
            rows = conn.execute("SELECT publisher_did, path FROM vlkb.datasets WHERE path LIKE %s ORDER BY 1",
                                ("%askap-emu%",)).fetchall()
    return cluster, [(r[0], r[1]) for r in rows]


def _job(base: str, data: dict) -> str:
    r = httpx.post(base + "/sfind/async", data={**data, "PHASE": "RUN"}, timeout=60)
    if r.status_code != 303:
        raise SystemExit(f"job refused: {r.status_code} {r.text[:300]}")
    return r.headers["location"]


def _wait(urls: Sequence[str]) -> None:
    for url in urls:
        while (phase := httpx.get(url + "/phase", timeout=60).text) in ("PENDING", "QUEUED", "EXECUTING"):
            time.sleep(0.2)
        if phase != "COMPLETED":
            raise SystemExit(f"{url} ended {phase}: {httpx.get(url + '/error').text[:300]}")


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--apps", default="aegean")
    ap.add_argument("--radius", type=float, default=0.15)
    args = ap.parse_args(argv)
    home = ROOT / "var" / "bench" / "sfind"
    home.mkdir(parents=True, exist_ok=True)
    cluster, tiles = _prepare(home)
    region = {"CIRCLE": f"{CENTRE[0]} {CENTRE[1]} {args.radius}", "POSSYS": "GALACTIC"}
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    try:
        did, path = tiles[2]
        for name in args.apps.split(","):
            finder = find_app(name)
            cut = plan(path, CutRequest(region=Circle.parse(region["CIRCLE"], "CIRCLE"), frame="galactic"))
            with tempfile.TemporaryDirectory() as tmp:
                image = prepare_image(cut, did, Path(tmp), spectral_given=False, max_pixels=10**9)
                finder.run(image, validate_options(finder.options(), {}))  # warm-up: imports
                t0 = time.perf_counter()
                finder.run(image, validate_options(finder.options(), {}))
                direct = time.perf_counter() - t0
            mpix = image.data.size / 1e6
            with serve(home, cluster.current_port(), local_concurrency="1") as (base, _):
                _wait([_job(base, {"APP": name, "ID": did, **region})])  # warm-up
                t0 = time.perf_counter()
                _wait([_job(base, {"APP": name, "ID": did, **region})])
                service = time.perf_counter() - t0
            print(f"{name}: {mpix:.3f} Mpix; direct {mpix / direct:.4f} Mpix/s ({direct:.2f} s), service "
                  f"{mpix / service:.4f} Mpix/s ({service:.2f} s); overhead {service / direct - 1:+.1%}")
        name = args.apps.split(",")[0]
        times = {}
        for workers in ("1", "2"):
            with serve(home, cluster.current_port(), local_concurrency=workers, jobs_per_owner="4") as (base, _):
                _wait([_job(base, {"APP": name, "ID": did, **region})])  # warm-up
                t0 = time.perf_counter()
                _wait([_job(base, {"APP": name, "ID": d, "CIRCLE": "0 0 0.1", "POSSYS": "GALACTIC"})
                       for d, _ in tiles[:4]])
                times[workers] = time.perf_counter() - t0
        print(f"{name}: four single-tile jobs, 1 worker {times['1']:.2f} s, 2 workers {times['2']:.2f} s, "
              f"speed-up {times['1'] / times['2']:.2f}x")
        print(f"load average at end: {os.getloadavg()[0]:.2f}")
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
