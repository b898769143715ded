"""Header-only ingest of FITS datasets into ``ivoa.obscore``, ``vlkb.datasets`` and the survey tables.

:func:`read_header` reads header blocks only (``astropy.io.fits.Header.fromfile``), walking
the HDUs by their declared sizes until the first image with two or more axes, and checks that
the file is as long as its headers say, so pixel data are never read. :func:`ingest_datasets`
describes each file with :func:`vo.ingest.obscore.obscore_row` and upserts it in its own
transaction (a savepoint when the caller has one open): a bad file (not FITS, truncated,
without a sky WCS) is reported with its reason and skipped, and never leaves half a dataset.
Then the survey's rows in ``datasets.surveys`` (with its dataset count) and
``vlkb.survey_policies`` are upserted.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from astropy.io import fits
from psycopg import sql

from schemas import find_table
from vo.ingest.obscore import IngestError, SurveyInfo, obscore_row, survey_info

__all__ = ["FileFailure", "IngestReport", "describe_file", "ingest_datasets", "read_header"]

_BLOCK = 2880
_GEOMETRY = {"point", "circle", "polygon", "path"}


@dataclass(frozen=True)
class FileFailure:
    """A file that was skipped, and why."""

    path: Path
    reason: str


@dataclass
class IngestReport:
    """Outcome of one :func:`ingest_datasets` call."""

    survey: str
    ingested: int = 0
    failures: list[FileFailure] = field(default_factory=list)
    dids: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.failures)

    def summary(self) -> str:
        """One line for logs and the CLI."""
        text = f"{self.survey}: {self.ingested} ingested, {self.failed} failed"
        return text + "".join(f"\n  {f.path}: {f.reason}" for f in self.failures)


def _data_size(header: fits.Header) -> int:
    """Bytes of the data unit after ``header``, padding included (FITS 4.0 section 4.4.1.1)."""
    naxis = int(header.get("NAXIS", 0))
    if naxis == 0:
        return 0
    count = 1
    for i in range(1, naxis + 1):
        count *= int(header.get(f"NAXIS{i}", 0))
    bits = abs(int(header.get("BITPIX", 8)))
    size = bits // 8 * int(header.get("GCOUNT", 1)) * (int(header.get("PCOUNT", 0)) + count)
    return -(-size // _BLOCK) * _BLOCK


def _has_end_card(rest: bytes) -> bool:
    return any(rest[i:i + 80].rstrip() == b"END" for i in range(0, len(rest) - 79, 80))


def read_header(path: Path) -> tuple[fits.Header, int]:
    """The header of the first image HDU with two or more axes, and that HDU's index.

    Raises :class:`IngestError` with a reason a user understands: not a FITS file, truncated,
    unreadable header, or no image.
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            first = f.read(80)
            if not (first.startswith(b"SIMPLE  =") and first[10:30].strip() == b"T"):
                raise IngestError("not a FITS file (it does not start with SIMPLE = T)")
            f.seek(0)
            index = 0
            while True:
                start = f.tell()
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        header = fits.Header.fromfile(f, endcard=True, padding=True)
                except (OSError, ValueError, EOFError) as exc:
                    f.seek(start)
                    if not _has_end_card(f.read()):
                        raise IngestError(f"truncated: the header of HDU {index} has no END card") from exc
                    raise IngestError(f"unreadable FITS header in HDU {index}: {exc}") from exc
                data_start = f.tell()
                if data_start % _BLOCK:  # a header cut short inside its last block
                    raise IngestError(f"truncated: header of HDU {index} ends before its 2880-byte block")
                need = _data_size(header)
                if data_start + need > size:
                    raise IngestError(
                        f"truncated: HDU {index} declares {need} data bytes, the file holds "
                        f"{max(0, size - data_start)}"
                    )
                axes = int(header.get("NAXIS", 0))
                if axes >= 2 and header.get("XTENSION", "IMAGE").strip() == "IMAGE":
                    return header, index
                f.seek(data_start + need)
                index += 1
                if data_start + need >= size:
                    raise IngestError("no image HDU with at least two axes")
    except OSError as exc:
        raise IngestError(f"cannot read the file: {exc.strerror or exc}") from exc


def describe_file(path: Path | str, survey: Any, *, authority: str, base_url: str) -> dict[str, Any]:
    """The ``ivoa.obscore`` row of one file, from its header only; :class:`IngestError` if it has none."""
    path = Path(path)
    header, _ = read_header(path)
    return obscore_row(header, path=path, survey=survey, authority=authority, base_url=base_url,
                       file_size=path.stat().st_size)


def _upsert(conn: psycopg.Connection, qualified: str, row: dict[str, Any], key: list[str],
            types: dict[str, str] | None = None, touch: str | None = None) -> None:
    schema, name = qualified.split(".")
    cols = list(row)
    types = types or {}
    values = sql.SQL(", ").join(
        sql.SQL("%s::{}").format(sql.SQL(types[c])) if c in types else sql.SQL("%s") for c in cols
    )
    updates = [sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in cols if c not in key]
    if touch:
        updates.append(sql.SQL("{} = now()").format(sql.Identifier(touch)))
    conn.execute(
        sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {}").format(
            sql.Identifier(schema, name),
            sql.SQL(", ").join(map(sql.Identifier, cols)),
            values,
            sql.SQL(", ").join(map(sql.Identifier, key)),
            sql.SQL(", ").join(updates),
        ),
        list(row.values()),
    )


def _obscore_types() -> dict[str, str]:
    table = find_table("ivoa.obscore")
    return {c.name: c.info.pg for c in table.columns if c.type in _GEOMETRY}


def _upsert_survey(conn: psycopg.Connection, info: SurveyInfo) -> None:
    count = conn.execute(
        "SELECT count(*) FROM ivoa.obscore WHERE obs_collection = %s AND obs_title = %s",
        (info.name, info.obs_title),
    ).fetchone()[0]
    _upsert(conn, "datasets.surveys", {
        "name": info.name, "species": info.species, "transition": info.transition,
        "description": info.description, "rest_frequency": info.rest_frequency,
        "velocity_unit": info.velocity_unit, "dataproduct_type": info.dataproduct_type,
        "facility": info.facility, "instrument": info.instrument, "reference": info.reference,
        "policy": info.policy, "dataset_count": count,
    }, ["name", "species", "transition"])
    _upsert(conn, "vlkb.survey_policies", {"survey": info.name, "groups": list(info.groups)}, ["survey"],
            touch="updated_at")


def ingest_datasets(
    conn: psycopg.Connection,
    survey: Any,
    paths: Iterable[Path | str],
    *,
    authority: str,
    base_url: str,
    progress: bool = False,
) -> IngestReport:
    """Describe and upsert each FITS file of ``survey``; returns what was ingested and what failed.

    ``survey`` is a survey dataclass (e.g. ``vo.demo.surveys.Survey``) or a mapping with name,
    species, transition and optionally the other ``datasets.surveys`` fields and ``groups``
    (empty: public). ``paths`` are stored as given in ``vlkb.datasets.path``. Re-ingesting a
    file updates its rows. With ``progress``, one line per file goes to stderr.
    """
    info = survey_info(survey)
    report = IngestReport(survey=f"{info.name} ({info.obs_title})")
    types = _obscore_types()
    paths = [Path(p) for p in paths]
    for i, path in enumerate(paths, start=1):
        try:
            row = describe_file(path, info, authority=authority, base_url=base_url)
        except IngestError as exc:
            report.failures.append(FileFailure(path, str(exc)))
            if progress:
                print(f"[{i}/{len(paths)}] skipped {path}: {exc}", file=sys.stderr)
            continue
        did = row["obs_publisher_did"]
        try:
            with conn.transaction():
                _upsert(conn, "ivoa.obscore", row, ["obs_publisher_did"], types)
                _upsert(conn, "vlkb.datasets", {
                    "publisher_did": did, "survey": info.name, "path": str(path), "size": path.stat().st_size,
                }, ["publisher_did"], touch="ingested_at")
        except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
            reason = f"rejected by the database: {exc.diag.message_primary or exc}"
            report.failures.append(FileFailure(path, reason))
            if progress:
                print(f"[{i}/{len(paths)}] skipped {path}: {reason}", file=sys.stderr)
            continue
        report.ingested += 1
        report.dids.append(did)
        if progress:
            print(f"[{i}/{len(paths)}] {did}", file=sys.stderr)
    with conn.transaction():
        _upsert_survey(conn, info)
    return report
