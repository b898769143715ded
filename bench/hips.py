"""HiPS: build time per survey, and tiles/s served over HTTP, cold and warm.

Builds (once) under ``var/bench/hips`` a private cluster with the demo data, then:

- rebuilds the HiPS of every 2D demo sub-survey (``--force``) and prints seconds, order and tile
  count per sub-survey, and the time of a second, incremental run (every HiPS current: skipped);
- starts ``vlkb serve`` and fetches every PNG tile of one HiPS with ``--clients`` concurrent
  clients: the first pass right after start (cold: a new process, nothing cached in it) and a
  second pass (warm), as tiles/s, against reading the same files from disk in this process
  (the baseline measured in the same run; the ratio is the cost of HTTP plus the visibility check);
  once with the visibility cache off (``VLKB_HIPS_VISIBILITY_TTL=0``: a database lookup per tile, as
  before the cache) and once with the default cache, so the cache's gain is a ratio of the same run.

    python -m bench.hips [--clients 4] [--survey hi-gal-70um] [--serve-only]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.server import demo_cluster, serve

ROOT = Path(__file__).resolve().parent.parent


def _build(home: Path, port: int, *args: str) -> tuple[float, str]:
    env = {**os.environ, "VLKB_HOME": str(home), "VLKB_DB_PORT": str(port), "VLKB_LOG_LEVEL": "WARNING"}
    started = time.perf_counter()
    run = subprocess.run([str(Path(sys.executable).parent / "vlkb"), "hips", "build", *args], env=env,
                         capture_output=True, text=True, check=True)
    return time.perf_counter() - started, run.stdout


def _fetch_all(base: str, paths: list[str], clients: int) -> float:
    """Tiles/s of fetching every path once with ``clients`` concurrent clients."""
    with httpx.Client(base_url=base, timeout=60) as http:
        def one(p: str) -> int:
            r = http.get(p)
            r.raise_for_status()
            return len(r.content)

        started = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(one, paths))
        return len(paths) / (time.perf_counter() - started)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hips", description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--survey", default="hi-gal-70um")
    parser.add_argument("--serve-only", action="store_true", help="skip the builds when the HiPS exists")
    args = parser.parse_args(argv)
    home = ROOT / "var" / "bench" / "hips"
    cluster, _ = demo_cluster(home)
    try:
        port = cluster.current_port()
        print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        root = home / "hips" / args.survey
        if not (args.serve_only and (root / "properties").is_file()):
            seconds, out = _build(home, port, "--force")
            print(f"full build of every 2D sub-survey: {seconds:.1f} s")
            for line in out.splitlines():
                print("  " + line)
            again, _ = _build(home, port)
            print(f"incremental run with nothing changed: {again:.1f} s ({seconds / again:.0f}x faster than a build)")
        tiles = sorted(p.relative_to(root).as_posix() for p in root.glob("Norder*/Dir*/Npix*.png"))
        started = time.perf_counter()
        for t in tiles:
            (root / t).read_bytes()
        disk = len(tiles) / (time.perf_counter() - started)
        paths = [f"/hips/{args.survey}/{t}" for t in tiles]
        print(f"{args.survey}: {len(tiles)} PNG tiles, {args.clients} clients")
        print(f"  read from disk (baseline): {disk:,.0f} tiles/s")
        rates = {}
        for label, ttl in (("no visibility cache (a lookup per tile)", "0"), ("visibility cache (default TTL)", None)):
            with serve(home, port, **({"hips_visibility_ttl": ttl} if ttl is not None else {})) as (base, _):
                cold = _fetch_all(base, paths, args.clients)
                warm = _fetch_all(base, paths, args.clients)
            rates[ttl] = (cold, warm)
            print(f"  {label}:")
            print(f"    served cold: {cold:,.0f} tiles/s ({disk / cold:.0f}x the disk read's cost)")
            print(f"    served warm: {warm:,.0f} tiles/s ({disk / warm:.0f}x the disk read's cost)")
        (c0, w0), (c1, w1) = rates["0"], rates[None]
        print(f"  cache gain: cold {c1 / c0:.2f}x, warm {w1 / w0:.2f}x")
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
