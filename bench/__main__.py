"""Run every benchmark: ``python -m bench``."""

from __future__ import annotations

from bench import hips, ingest, ingest_catalog, jobs, sedfit, soda, streaming, tap_http


def main() -> None:
    """Each benchmark in turn, with its default settings."""
    streaming.main([])
    tap_http.main([])
    ingest.main([])
    ingest_catalog.main(["--rows", "200000"])
    soda.main([])
    jobs.main([])
    sedfit.main([])
    hips.main([])


if __name__ == "__main__":
    main()
