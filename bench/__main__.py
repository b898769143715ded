"""Run every benchmark: ``python -m bench``."""

from __future__ import annotations

from bench import cones, flood, hips, ingest, ingest_catalog, jobs, routes, sedfit, sfind, soda, streaming, tap_http


def main() -> None:
    """Each benchmark in turn, with its default settings."""
    streaming.main([])
    streaming.main(["--geometry"])
    tap_http.main([])
    routes.main([])
    cones.main(["--rows", "1000000"])
    ingest.main([])
    ingest_catalog.main(["--rows", "200000"])
    soda.main([])
    jobs.main([])
    flood.main([])
    sedfit.main([])
    sfind.main([])
    hips.main([])


if __name__ == "__main__":
    main()
