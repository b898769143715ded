"""Route matching: how long the service takes to find the route of a request, per path.

FastAPI matches the included routers in order, a regular expression a route, so a path's cost
grows with the routes matched before its own (app/main.py puts the busiest first). For each
path this prints the median time to find its route in the service's app, against finding the
same route in an app holding only that path's router (the floor, measured in the same run), in
this process; no server or database is needed.

    python -m bench.routes [--rounds 7] [--calls 2000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence

from fastapi import FastAPI
from starlette.routing import BaseRoute, Match

from app.main import create_app
from app.settings import Settings

#: the requests the service answers most: cuts, discovery, queries, the portal's tiles, the
#: ViaLactea client's bases; then a UWS job's phase and the health probe
PATHS = ("/soda/sync", "/sia/query", "/tap/sync", "/datalink/links", "/hips/hi-gal-70um/Norder3/Dir0/Npix1.png",
         "/moc/hi-gal", "/vlkb/datasets/soda/sync", "/vlkb/sync", "/tap/async/0123abcd/phase", "/health")


def _scope(path: str) -> dict[str, object]:
    return {"type": "http", "path": path, "method": "GET", "root_path": "", "headers": [], "query_string": b""}


def _first(routes: Sequence[BaseRoute], scope: dict[str, object]) -> BaseRoute | None:
    for route in routes:
        if route.matches(scope)[0] is Match.FULL:
            return route
    return None


def _median_us(routes: Sequence[BaseRoute], path: str, rounds: int, calls: int) -> float:
    scope = _scope(path)
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            _first(routes, scope)
        times.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(times)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.routes", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args(argv)
    app = create_app(Settings())
    routes = app.router.routes
    print(f"== route matching, median of {args.rounds} x {args.calls} calls ==")
    print(f"{'path':44s} {'service':>9s} {'alone':>8s} {'ratio':>6s}  routes before it")
    for path in PATHS:
        own = _first(routes, _scope(path))
        assert own is not None, path
        alone = FastAPI().router
        alone.routes.append(own)  # the same route object, with nothing before it
        service = _median_us(routes, path, args.rounds, args.calls)
        floor = _median_us(alone.routes, path, args.rounds, args.calls)
        print(f"{path:44s} {service:7.1f} us {floor:6.1f} us {service / floor:6.1f}  {routes.index(own)}")


if __name__ == "__main__":
    main()
