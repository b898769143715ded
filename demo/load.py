"""Load the demo into a database: generate the files, ingest them, bulk-load the catalogues.

Used by ``vlkb demo-data``, ``make demo`` (through ``vlkb serve --demo``) and the test
fixtures, so the tests exercise the exact path an operator takes.
"""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
from psycopg import sql

from db.ddl import pg_schema
from db.load import copy_columns
from demo import DEFAULT_SEED, generate
from schemas import find_table
from vo.ingest.datasets import ingest_datasets

__all__ = ["demo_loaded", "load_demo"]


def demo_loaded(conn: psycopg.Connection) -> bool:
    """True when datasets and catalogue rows are present (the demo or real data)."""
    # SELECT EXISTS always answers one row
    datasets = conn.execute("SELECT EXISTS (SELECT 1 FROM ivoa.obscore)").fetchone()
    sources = conn.execute("SELECT EXISTS (SELECT 1 FROM compactsources.band70um)").fetchone()
    conn.rollback()
    return bool(datasets and datasets[0] and sources and sources[0])


def load_demo(
    conn: psycopg.Connection, data_dir: Path, *, scale: int = 1, authority: str,
    seed: int = DEFAULT_SEED,
) -> str:
    """Generate the demo under ``data_dir`` and load it; returns a short report.

    Catalogue tables are emptied and reloaded in one transaction; datasets are upserted,
    so running it twice gives the same database.
    """
    t0 = time.monotonic()
    demo = generate(Path(data_dir), scale=scale, seed=seed)
    t1 = time.monotonic()
    lines = []
    for survey in demo.surveys:
        report = ingest_datasets(conn, survey, demo.files[survey], authority=authority)
        if report.failed:
            raise RuntimeError("demo ingest failed: " + report.summary())
        lines.append(report.summary())
    t2 = time.monotonic()
    rows = 0
    with conn.transaction():
        for name, columns in demo.tables.items():
            table = find_table(name)
            conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(pg_schema(table.schema_name), table.name)))
            rows += copy_columns(conn, table, columns)
        for name in demo.tables:
            table = find_table(name)
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(pg_schema(table.schema_name), table.name)))
    conn.commit()
    t3 = time.monotonic()
    files = sum(len(f) for f in demo.files.values())
    lines.append(
        f"demo: {files} FITS files generated in {t1 - t0:.1f} s and ingested in {t2 - t1:.1f} s; "
        f"{rows} catalogue rows in {len(demo.tables)} tables loaded in {t3 - t2:.1f} s"
    )
    return "\n".join(lines)
