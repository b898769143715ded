"""Header-only ingest of FITS datasets into ``ivoa.obscore``, ``vlkb.datasets`` and the survey tables.

:func:`read_image_header` reads header blocks only, from a local path or any fsspec URL
(:mod:`vo.storage`: ranged reads for remote files), walking the HDUs by their declared sizes
until the first image with two or more axes, and checks that the file is as long as its
headers say, so pixel data are never read. :func:`ingest_datasets` describes each file with
:func:`vo.ingest.obscore.obscore_row` and upserts the rows in batches (one transaction per
batch; a batch the database refuses is replayed file by file under savepoints to name the
culprit), so a file's rows land together or not at all. A bad file (not FITS, truncated,
without a sky WCS) is reported with its reason and skipped, and the batch goes on. Then the
survey's rows in ``datasets.surveys`` (with its dataset count) and ``vlkb.survey_policies``
are upserted. Presentation (progress bars) belongs to the caller, through ``on_file``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any

import psycopg
from astropy.io import fits
from psycopg import sql

from db.withdraw import withdraw
from schemas import find_table
from vo import storage
from vo.ingest.obscore import (
    IngestError,
    SurveyInfo,
    band_label,
    band_source,
    obscore_row,
    publisher_did,
    survey_info,
)

__all__ = [
    "BATCH_SIZE",
    "FileFailure",
    "ImageHeader",
    "IngestReport",
    "MissingOptionError",
    "Outcome",
    "describe_file",
    "ingest_datasets",
    "read_header",
    "read_image_header",
]

_BLOCK = 2880
_CARD = 80
#: A header longer than this many blocks (36,000 cards) is taken for a broken file.
_MAX_HEADER_BLOCKS = 1000
_GEOMETRY = {"point", "circle", "polygon", "path"}
#: Files upserted per transaction: large enough to amortise round trips, small enough that an
#: interrupted ingest loses little.
BATCH_SIZE = 500


class Outcome(Enum):
    """What happened to one file."""

    INGESTED = "ingested"
    UPDATED = "updated"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class FileFailure:
    """A file that was skipped, and why."""

    path: str
    reason: str


class MissingOptionError(ValueError):
    """The survey description lacks what the files need (a cube's species, a transition): the
    whole ingest stops, and the message names the option and suggests a value from the header."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option


@dataclass
class IngestReport:
    """Outcome of one :func:`ingest_datasets` call: new datasets, updated ones, skipped files."""

    survey: str
    ingested: int = 0
    updated: int = 0
    failures: list[FileFailure] = field(default_factory=list)
    dids: list[str] = field(default_factory=list)
    #: (old DID, new DID) of files re-ingested under another survey, species or transition: the
    #: old dataset is withdrawn in the same transaction (its cached previews are the caller's)
    replaced: list[tuple[str, str]] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def stored(self) -> int:
        """Files whose rows are now in the database (new or updated)."""
        return self.ingested + self.updated

    def summary(self) -> str:
        """One line for logs and the CLI, then one line per skipped file with its reason."""
        text = f"{self.survey}: {self.ingested} ingested, {self.updated} updated, {self.failed} skipped"
        text += "".join(f"\n  replaced {old} (withdrawn) by {new}" for old, new in self.replaced)
        return text + "".join(f"\n  skipped {f.path}: {f.reason}" for f in self.failures)


@dataclass(frozen=True)
class ImageHeader:
    """The header of a file's first image HDU: parsed, raw (for wcslib), its HDU index, the file size."""

    header: fits.Header
    raw: bytes
    index: int
    size: int


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


def _end_card(block: bytes) -> int:
    """Offset just past the END card in ``block`` (FITS 4.0 section 4.4.1), or -1."""
    for i in range(0, len(block) - _CARD + 1, _CARD):
        if block[i:i + 8] == b"END     ":
            return i + _CARD
    return -1


def _read_raw_header(f: Any, index: int) -> bytes:
    """The header blocks of the HDU at the file's position, up to and including the END card."""
    blocks: list[bytes] = []
    for _ in range(_MAX_HEADER_BLOCKS):
        block = f.read(_BLOCK)
        end = _end_card(block)
        if end >= 0:
            if len(block) < _BLOCK:  # a header cut short inside its last block
                raise IngestError(f"truncated: header of HDU {index} ends before its 2880-byte block")
            blocks.append(block[:end])
            return b"".join(blocks)
        if len(block) < _BLOCK:
            raise IngestError(f"truncated: the header of HDU {index} has no END card")
        blocks.append(block)
    raise IngestError(f"no END card in the first {_MAX_HEADER_BLOCKS} header blocks of HDU {index}")


def read_image_header(loc: str | Path, size: int | None = None) -> ImageHeader:
    """The first image HDU with two or more axes of the file at ``loc`` (a path or fsspec URL).

    Reads header blocks only. Raises :class:`IngestError` with a reason a user understands:
    not a FITS file, truncated, unreadable header, no image, or the file cannot be read.
    """
    loc = str(loc)
    try:
        if size is None:
            size = storage.file_info(loc).size
        with storage.open_binary(loc, size) as f:
            first = f.read(_CARD)
            if not (first.startswith(b"SIMPLE  =") and first[10:30].strip() == b"T"):
                raise IngestError("not a FITS file (it does not start with SIMPLE = T)")
            f.seek(0)
            index, start = 0, 0
            while True:
                raw = _read_raw_header(f, index)
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        header = fits.Header.fromstring(raw)
                except (ValueError, KeyError) as exc:
                    raise IngestError(f"unreadable FITS header in HDU {index}: {exc}") from exc
                data_start = start + -(-len(raw) // _BLOCK) * _BLOCK
                need = _data_size(header)
                if data_start + need > size:
                    raise IngestError(
                        f"truncated: HDU {index} declares {need} data bytes, the file holds "
                        f"{max(0, size - data_start)}"
                    )
                if int(header.get("NAXIS", 0)) >= 2 and header.get("XTENSION", "IMAGE").strip() == "IMAGE":
                    return ImageHeader(header, raw, index, size)
                start = data_start + need
                index += 1
                if start >= size:
                    raise IngestError("no image HDU with at least two axes")
                f.seek(start)
    except IngestError:
        raise
    except FileNotFoundError as exc:
        raise IngestError("cannot read the file: no such file") from exc
    except (OSError, ValueError) as exc:  # fsspec backends raise ValueError for some bad URLs
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise IngestError(f"cannot read the file: {reason}") from exc


def read_header(loc: str | Path) -> tuple[fits.Header, int]:
    """The header of the first image HDU with two or more axes, and that HDU's index."""
    found = read_image_header(loc)
    return found.header, found.index


def describe_file(loc: str | Path, survey: Any, *, authority: str) -> dict[str, Any]:
    """The ``ivoa.obscore`` row of one file, from its header only; :class:`IngestError` if it has none."""
    found = read_image_header(loc)
    return obscore_row(found.header, raw=found.raw, path=str(loc), survey=survey, authority=authority,
                       file_size=found.size)


# -- upserts ---------------------------------------------------------------------------------------
def _upsert_sql(qualified: str, cols: list[str], key: list[str], types: dict[str, str] | None = None,
                touch: str | None = None) -> sql.Composed:
    """``INSERT ... ON CONFLICT (key) DO UPDATE`` of ``cols``, composed once and run for many rows."""
    schema, name = qualified.split(".")
    types = types or {}
    values = sql.SQL(", ").join(
        sql.SQL("%s::{}").format(sql.SQL(types[c])) if c in types else sql.SQL("%s") for c in cols
    )
    updates = [sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in cols if c not in key]
    if touch:
        updates.append(sql.SQL("{} = now()").format(sql.Identifier(touch)))
    return sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {}").format(
        sql.Identifier(schema, name),
        sql.SQL(", ").join(map(sql.Identifier, cols)),
        values,
        sql.SQL(", ").join(map(sql.Identifier, key)),
        sql.SQL(", ").join(updates),
    )


def _upsert(conn: psycopg.Connection, qualified: str, row: dict[str, Any], key: list[str],
            touch: str | None = None) -> None:
    conn.execute(_upsert_sql(qualified, list(row), key, touch=touch), list(row.values()))


def _upsert_survey(conn: psycopg.Connection, info: SurveyInfo) -> None:
    assert info.groups is not None  # ingest() reads the survey's current policy when none is given
    counted = conn.execute(
        "SELECT count(*) FROM ivoa.obscore WHERE obs_collection = %s AND obs_title = %s",
        (info.name, info.obs_title),
    ).fetchone()
    assert counted is not None  # count(*) always answers one row
    count = counted[0]
    _upsert(conn, "datasets.surveys", {
        "name": info.name, "species": info.species, "transition": info.transition,
        "description": info.description, "rest_frequency": info.rest_frequency,
        "velocity_unit": info.velocity_unit, "dataproduct_type": info.dataproduct_type,
        "facility": info.facility, "instrument": info.instrument, "reference": info.reference,
        "policy": info.policy, "dataset_count": count,
    }, ["name", "species", "transition"])
    _upsert(conn, "vlkb.survey_policies", {"survey": info.name, "groups": list(info.groups)}, ["survey"],
            touch="updated_at")
    # the policy is the survey's: rows ingested earlier follow it too
    rights = "secure" if info.groups else "public"
    conn.execute("UPDATE ivoa.obscore SET data_rights = %s WHERE obs_collection = %s AND data_rights <> %s",
                 (rights, info.name, rights))


@dataclass(frozen=True)
class _Described:
    loc: str
    row: dict[str, Any]
    size: int

    @property
    def did(self) -> str:
        return self.row["obs_publisher_did"]


#: Errors that mean "the database refuses this row" rather than "the database is broken":
#: bad values, constraints, and pgSphere's refusals (raised as XX000, e.g. a degenerate or
#: too large footprint polygon).
_REFUSED = (psycopg.errors.DataError, psycopg.errors.IntegrityError, psycopg.errors.InternalError_)


class _Writer:
    """Upserts described files in batches; a refused batch is replayed file by file."""

    def __init__(self, conn: psycopg.Connection, survey: str) -> None:
        table = find_table("ivoa.obscore")
        self.cols = [c.name for c in table.columns if not c.generated]
        types = {c.name: c.info.pg for c in table.columns if c.type in _GEOMETRY}
        self.obscore = _upsert_sql("ivoa.obscore", self.cols, ["obs_publisher_did"], types)
        self.files = _upsert_sql("vlkb.datasets", ["publisher_did", "survey", "path", "size"], ["publisher_did"],
                                 touch="ingested_at")
        self.conn, self.survey = conn, survey
        self.replaced: list[tuple[str, str]] = []

    def _write(self, items: list[_Described]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(self.obscore, [[d.row[c] for c in self.cols] for d in items])
            cur.executemany(self.files, [(d.did, self.survey, d.loc, d.size) for d in items])

    def _replace(self, items: list[_Described]) -> list[tuple[str, str]]:
        """Withdraw the datasets stored from the same files under another DID (a re-ingest with a
        corrected survey, species or transition); (old DID, new DID) of each."""
        by_path = {d.loc: d.did for d in items}
        rows = self.conn.execute(
            "SELECT publisher_did, path FROM vlkb.datasets WHERE path = ANY(%s) AND NOT publisher_did = ANY(%s)",
            (list(by_path), [d.did for d in items])).fetchall()
        withdraw(self.conn, [r[0] for r in rows])
        return [(old, by_path[path]) for old, path in rows]

    def write(self, items: list[_Described]) -> list[tuple[_Described, Outcome, str | None]]:
        """Store ``items``; returns each with its outcome and, when skipped, the reason."""
        if not items:
            return []
        existing = {r[0] for r in self.conn.execute(
            "SELECT obs_publisher_did FROM ivoa.obscore WHERE obs_publisher_did = ANY(%s)",
            ([d.did for d in items],)).fetchall()}
        seen = lambda d: Outcome.UPDATED if d.did in existing else Outcome.INGESTED  # noqa: E731
        try:
            with self.conn.transaction():
                replaced = self._replace(items)
                self._write(items)
            self.replaced += replaced
            moved = {new for _, new in replaced}
            return [(d, Outcome.UPDATED if d.did in moved else seen(d), None) for d in items]
        except _REFUSED:
            pass  # one file's values are refused: find which, keep the others
        out: list[tuple[_Described, Outcome, str | None]] = []
        for d in items:
            try:
                with self.conn.transaction():
                    replaced = self._replace([d])
                    self._write([d])
                self.replaced += replaced
                out.append((d, Outcome.UPDATED if replaced else seen(d), None))
            except _REFUSED as exc:
                out.append((d, Outcome.SKIPPED, f"rejected by the database: {exc.diag.message_primary or exc}"))
        return out


def _complete(info: SurveyInfo, found: ImageHeader, loc: str, *, authority: str) -> SurveyInfo:
    """``info`` with its species and transition, or :class:`MissingOptionError` naming the option.

    A 2D map without a species is Continuum; a cube without one is refused (a line survey must
    say which line). No transition is ever invented: the error suggests one from the header.
    """
    probe = replace(info, species=info.species or "Continuum", transition=info.transition or "unknown")
    row = obscore_row(found.header, raw=found.raw, path=loc, survey=probe, authority=authority,
                      file_size=found.size)
    name = storage.name_of(loc)
    cube = row["dataproduct_type"] == "cube"
    if cube and not info.species:
        raise MissingOptionError("species", f"{name} is a spectral cube: give its species with --species "
                                 "(e.g. --species 13CO); Continuum is for 2D maps")
    if not info.transition:
        if cube:
            rest = next((found.header[k] for k in ("RESTFRQ", "RESTFREQ") if found.header.get(k)), None)
            line = f"the line at rest frequency {float(rest) / 1e9:.6g} GHz" if rest else "the line observed"
            raise MissingOptionError("transition", f"no transition given: give --transition for {line} in {name} "
                                     "(e.g. --transition 1-0)")
        source = band_source(found.header) or "its one-channel spectral axis"
        hint = band_label(row["em_min"], row["em_max"])
        raise MissingOptionError("transition", f"no transition given: give --transition, e.g. --transition "
                                 f"'{hint}' (the band {name} gives in {source})")
    return replace(info, species=info.species or "Continuum")


def ingest_datasets(
    conn: psycopg.Connection,
    survey: Any,
    paths: Iterable[Path | str],
    *,
    authority: str,
    on_file: Callable[[str, Outcome, str | None], None] | None = None,
    batch_size: int = BATCH_SIZE,
) -> IngestReport:
    """Describe and upsert each FITS file of ``survey``; returns what was ingested, updated and skipped.

    ``survey`` is a survey dataclass (e.g. ``demo.surveys.Survey``) or a mapping with name,
    species, transition and optionally the other ``datasets.surveys`` fields and ``groups``
    (empty: public; absent or None: the policy the survey already has, public if it is new).
    ``paths`` are local paths or fsspec URLs; they are stored in
    ``vlkb.datasets.path`` in the form :func:`vo.storage.location` gives (absolute paths).
    Re-ingesting a file updates its rows; re-ingesting it under another survey, species or
    transition (a new DID) withdraws the old dataset in the same transaction
    (:attr:`IngestReport.replaced`). Two files that would get the same DID (same file name in
    one survey) are refused after the first. Species and transition may be None: a 2D map is
    then Continuum, while a cube without a species, or any file without a transition, stops the
    ingest with :class:`MissingOptionError` (found on the first readable file, before anything is
    written, unless a cube follows 2D maps in one run). ``on_file(location, outcome, reason)``
    is called once per file, in order of completion, e.g. to drive a progress bar.
    """
    info = survey_info(survey)
    if info.groups is None:  # keep the survey's policy
        policy = conn.execute("SELECT groups FROM vlkb.survey_policies WHERE survey = %s", (info.name,)).fetchone()
        info = replace(info, groups=tuple(policy[0]) if policy else ())
    species_given = bool(info.species)
    report = IngestReport(survey=info.name if not info.complete else f"{info.name} ({info.obs_title})")
    writer = _Writer(conn, info.name)
    first_of: dict[str, str] = {}
    pending: list[_Described] = []

    def done(loc: str, outcome: Outcome, reason: str | None, did: str | None = None) -> None:
        if outcome is Outcome.SKIPPED:
            report.failures.append(FileFailure(loc, reason or "skipped"))
        else:
            report.ingested += outcome is Outcome.INGESTED
            report.updated += outcome is Outcome.UPDATED
            report.dids.append(did or "")
        if on_file is not None:
            on_file(loc, outcome, reason)

    def flush() -> None:
        for d, outcome, reason in writer.write(pending):
            done(d.loc, outcome, reason, d.did)
        pending.clear()
        report.replaced = list(writer.replaced)

    for given in paths:
        loc = storage.location(given)
        try:
            found = read_image_header(loc)
            if not info.complete:
                info = _complete(info, found, loc, authority=authority)
                report.survey = f"{info.name} ({info.obs_title})"
            did = publisher_did(authority, info.slug, storage.name_of(loc))
            if did in first_of:
                raise IngestError(f"same dataset ID as {first_of[did]}: file names must be unique within a survey")
            row = obscore_row(found.header, raw=found.raw, path=loc, survey=info, authority=authority,
                              file_size=found.size)
            if not species_given and row["dataproduct_type"] == "cube":
                raise MissingOptionError("species", f"{storage.name_of(loc)} is a spectral cube: give its species "
                                         "with --species (e.g. --species 13CO); Continuum is for 2D maps")
        except IngestError as exc:
            done(loc, Outcome.SKIPPED, str(exc))
            continue
        first_of[did] = loc
        pending.append(_Described(loc, row, found.size))
        if len(pending) >= batch_size:
            flush()
    flush()
    if info.complete:
        with conn.transaction():
            _upsert_survey(conn, info)
    return report
