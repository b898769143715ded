"""Source finding through the service against calling the finder directly, and jobs on 1 and 2 workers.

Builds (once) under ``var/bench/sfind`` a private cluster with the demo data, starts ``vlkb serve``,
and prints, per app:

- megapixels per second of one job over an ASKAP-EMU demo tile, whole or a circle of it (``--radius``)
  (``/sfind/async``, wall time from creation to COMPLETED, results written) against the same finder
  called directly on the same image in this process, measured in the same run: the ratio is the
  service's overhead;
- where the service's extra time goes, from the job's own report (search, outputs, the rest: dispatch,
  result writes, the client's UWS ``WAIT``), and the finder's own steps (BANE, island finding and
  fitting, ...) in both paths side by side: a step slower only in the service points at the cause;
- one four-tile job (the four ASKAP tiles around (0, 0), whole, or a circle: ``--four-radius``) on
  one and two worker processes of the job engine (``vlkb serve`` with ``VLKB_WORKERS=1`` and ``=2``,
  one job slot each: the tiles are parts of the job, ``vo/uws/parts.py``, searched one after the
  other or two at once): seconds and the speed-up.

Each figure is the best of ``--repeat`` runs (the machine is shared: the load average is printed).

    python -m bench.sfind [--apps aegean,pybdsf] [--radius 0.15] [--repeat 3]
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


#: one client session for every request, kept alive as pyvo's (a new httpx client per request costs
#: ~15 ms of its own set-up, which would be counted as the service's)
_HTTP = httpx.Client(timeout=60)


def _job(base: str, data: dict) -> str:
    r = _HTTP.post(base + "/sfind/async", data={**data, "PHASE": "RUN"})
    if r.status_code != 303:
        raise SystemExit(f"job refused: {r.status_code} {r.text[:300]}")
    return r.headers["location"]


def _wait(urls: Sequence[str]) -> None:
    """Until every job ends, blocking in UWS WAIT (1.1 section 2.2.1.1), as a client would."""
    for url in urls:
        while (phase := _HTTP.get(url + "/phase").text) in ("PENDING", "QUEUED", "EXECUTING"):
            _HTTP.get(url, params={"WAIT": "30"})
        if phase != "COMPLETED":
            raise SystemExit(f"{url} ended {phase}: {_HTTP.get(url + '/error').text[:300]}")


def _report(url: str) -> dict:
    return _HTTP.get(url + "/results/report").json()


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--apps", default="aegean,pybdsf")
    # the whole file by default, as a survey tile is searched; a small circle shows the job's fixed cost
    # (about 0.25 s: outputs, dispatch) against a search of half a second
    ap.add_argument("--radius", type=float, default=0.0,
                    help="the per-app runs over a circle of this radius (deg) in ASKAP tile 3; 0: the whole tile")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tiles-only", action="store_true", help="only the four-tile job")
    ap.add_argument("--four-radius", type=float, default=0.0,
                    help="the four-tile job over a circle of this radius (deg) around (0, 0); 0: the whole tiles")
    args = ap.parse_args(argv)
    home = ROOT / "var" / "bench" / "sfind"
    home.mkdir(parents=True, exist_ok=True)
    cluster, tiles = _prepare(home)
    region = {"CIRCLE": f"{CENTRE[0]} {CENTRE[1]} {args.radius}", "POSSYS": "GALACTIC"} if args.radius > 0 else {}
    print(f"load average at start: {os.getloadavg()[0]:.2f} (2 shared cores: other work runs at the same time)")
    try:
        did, path = tiles[2]
        for name in [] if args.tiles_only else args.apps.split(","):
            finder = find_app(name)
            cut = plan(path, CutRequest(region=Circle.parse(region["CIRCLE"], "CIRCLE") if region else None,
                                        frame="galactic"))
            pairs, reports = [], []
            with tempfile.TemporaryDirectory() as tmp, \
                    serve(home, cluster.current_port(), local_concurrency="1") as (base, _):
                image = prepare_image(cut, did, Path(tmp), spectral_given=False, max_pixels=10**9)
                finder.run(image, validate_options(finder.options(), {}))  # warm-up: imports
                _wait([_job(base, {"APP": name, "ID": did, **region})])  # warm-up
                # direct and service runs alternate, so both see the same load of the shared machine
                steps: list[tuple[dict, dict]] = []
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    out = finder.run(image, validate_options(finder.options(), {}))
                    direct = time.perf_counter() - t0
                    t0 = time.perf_counter()
                    url = _job(base, {"APP": name, "ID": did, **region})
                    _wait([url])
                    pairs.append((direct, time.perf_counter() - t0))
                    report = _report(url)
                    reports.append({**report["timings"], "tile_s": report["inputs"][0]["seconds"]})
                    steps.append((dict(out.notes.get("steps", {})), report["inputs"][0].get("steps", {})))
            mpix = image.data.size / 1e6
            ratios = sorted(sv / d for d, sv in pairs)
            d, sv = min(p[0] for p in pairs), min(p[1] for p in pairs)
            t = min(reports, key=lambda r: r["job_s"])
            print(f"{name}: {mpix:.3f} Mpix; direct {mpix / d:.4f} Mpix/s ({d:.2f} s), service "
                  f"{mpix / sv:.4f} Mpix/s ({sv:.2f} s), best of {args.repeat}; overhead of the best "
                  f"{sv / d - 1:+.1%}, of each pair {', '.join(f'{r - 1:+.0%}' for r in ratios)}; in the job: "
                  f"search {t['search_s']:.2f} s (the tile in its process {t['tile_s']:.2f} s), cross-match "
                  f"{t['xmatch_s']:.2f} s, outputs "
                  f"{t['job_s'] - t['total_s']:.2f} s; outside the job {sv - t['job_s']:.2f} s "
                  f"(load {os.getloadavg()[0]:.2f})")
            for key in steps[0][0]:  # each step's best of the runs, direct against the service
                d_s, s_s = min(st[0][key] for st in steps), min(st[1].get(key, float("nan")) for st in steps)
                print(f"  {name} step {key.removesuffix('_s')}: direct {d_s:.3f} s, service {s_s:.3f} s "
                      f"({s_s / d_s - 1:+.0%})")
        name = args.apps.split(",")[0]
        times = {}
        # whole tiles by default (what a survey-wide job searches: 768 x 576 pixels each), so the tiles, not the
        # job's fixed costs (dispatch, stitching, outputs), take the time; --four-radius: a circle around (0, 0)
        four: dict[str, object] = {"APP": name, "ID": [d for d, _ in tiles[:4]]}
        if args.four_radius > 0:
            four.update(CIRCLE=f"0 0 {args.four_radius}", POSSYS="GALACTIC")
        for procs in ("1", "2"):
            with serve(home, cluster.current_port(), local_concurrency="1", workers=procs) as (base, _):
                for _ in range(int(procs)):  # warm-up: the finder's imports in each process
                    _wait([_job(base, four)])
                runs = []
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    _wait([_job(base, four)])
                    runs.append(time.perf_counter() - t0)
                times[procs] = min(runs)
        print(f"{name}: one four-tile job, 1 worker process {times['1']:.2f} s, 2 worker processes "
              f"{times['2']:.2f} s, speed-up {times['1'] / times['2']:.2f}x (target >= 1.7x)")
        print(f"load average at end: {os.getloadavg()[0]:.2f}")
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
