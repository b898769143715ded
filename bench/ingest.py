"""Header-only FITS ingest: milliseconds per file over 1,000 generated files.

Writes 1,000 small FITS images with real Galactic WCS (different centres) to a temporary
directory, ingests them into ivoa.obscore under a throwaway survey, then ingests them again
(every row updated), prints ms/file for both against the time astropy takes just to read the
same headers (``fits.getheader``), measured in the same run, then removes the rows again.

    python -m bench.ingest [--files 1000] [--url postgresql://...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import psycopg
from astropy.io import fits

from bench.server import start_cluster
from vo.ingest.datasets import ingest_datasets

SURVEY = "BenchIngest"


def _write_files(directory: Path, n: int) -> list[Path]:
    data = np.zeros((64, 64), np.float32)
    paths = []
    for i in range(n):
        h = fits.Header()
        h.update({
            "CTYPE1": "GLON-CAR", "CTYPE2": "GLAT-CAR", "CUNIT1": "deg", "CUNIT2": "deg",
            "CRVAL1": (i * 0.36) % 360, "CRVAL2": 0.0, "CRPIX1": 32.5, "CRPIX2": 32.5,
            "CDELT1": -0.001, "CDELT2": 0.001, "BUNIT": "MJy/sr", "BMAJ": 0.0015, "BMIN": 0.0015,
            "WAVELENG": 7.0e-5, "TELESCOP": "Herschel", "INSTRUME": "PACS",
        })
        path = directory / f"bench_{i:04d}.fits"
        fits.writeto(path, data, h)
        paths.append(path)
    return paths


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--url", help="PostgreSQL URL (default: the embedded cluster under VLKB_HOME)")
    args = parser.parse_args(argv)
    if args.url is None:
        _, args.url = start_cluster()
    with tempfile.TemporaryDirectory() as tmp:
        paths = _write_files(Path(tmp), args.files)
        t0 = time.perf_counter()
        for p in paths:
            fits.getheader(p)
        headers = time.perf_counter() - t0
        with psycopg.connect(args.url) as conn:
            survey = {"name": SURVEY, "species": "Continuum", "transition": "70 um"}
            t0 = time.perf_counter()
            report = ingest_datasets(conn, survey, paths, authority="bench.local")
            took = time.perf_counter() - t0
            t0 = time.perf_counter()
            again = ingest_datasets(conn, survey, paths, authority="bench.local")
            took_again = time.perf_counter() - t0
            for sql in ("DELETE FROM ivoa.obscore WHERE obs_collection = %s",
                        "DELETE FROM vlkb.datasets WHERE survey = %s",
                        "DELETE FROM datasets.surveys WHERE name = %s",
                        "DELETE FROM vlkb.survey_policies WHERE survey = %s"):
                conn.execute(sql, (SURVEY,))
            conn.commit()
    base = headers / args.files * 1000
    print(f"\n== header-only ingest of {args.files} FITS files ==")
    print(f"astropy fits.getheader (baseline)        {base:6.2f} ms/file")
    for what, rep, secs in (("vlkb ingest, new rows", report, took), ("vlkb ingest again, updates", again, took_again)):
        ms = secs / max(rep.stored, 1) * 1000
        print(f"{what:<40} {ms:6.2f} ms/file ({rep.ingested} new, {rep.updated} updated, {rep.failed} skipped), "
              f"ratio to baseline {ms / base:.1f}")


if __name__ == "__main__":
    main()
