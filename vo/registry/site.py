"""The records this site publishes, assembled: authority, registry, service and public surveys.

Coverage comes from the footprints an anonymous caller can see (the registry is public, so a
restricted survey gets no record and adds nothing to the service's coverage), through the same
MOC cache as ``/moc``. Dates come from a :class:`~vo.registry.datestamps.DatestampBook`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from lxml import etree
from mocpy import MOC
from psycopg_pool import AsyncConnectionPool

from db.footprints import SurveySummary, survey_summaries
from vo.caller import ANONYMOUS, session
from vo.moc import RECORD_ORDER, MocCache, survey_moc
from vo.registry.datestamps import DatestampBook, content_digest
from vo.registry.oai import IdentifyInfo, Record
from vo.registry.resources import (
    Coverage,
    Site,
    SurveyInfo,
    authority_record,
    energy_interval,
    registry_record,
    service_record,
    survey_record,
    wavebands,
)

__all__ = ["STD_SODA_ASYNC", "STD_SODA_SYNC", "Published", "published_records"]

STD_SODA_SYNC = "ivo://ivoa.net/std/SODA#sync-1.0"
STD_SODA_ASYNC = "ivo://ivoa.net/std/SODA#async-1.0"


@dataclass(frozen=True)
class Published:
    """Every record of the site, and the Identify description of its registry."""

    records: list[Record]
    identify: IdentifyInfo


def _coarse(moc: MOC) -> str | None:
    if moc.empty():
        return None
    return (moc.degrade_to_order(RECORD_ORDER) if moc.max_order > RECORD_ORDER else moc).to_string("ascii")


def _span(values: Sequence[float | None], lo: bool) -> float | None:
    present = [v for v in values if v is not None]
    if not present:
        return None
    return min(present) if lo else max(present)


def _coverage(rows: Sequence[SurveySummary], moc: MOC) -> Coverage:
    t0, t1 = _span([r.t_min for r in rows], True), _span([r.t_max for r in rows], False)
    e0, e1 = _span([r.em_min for r in rows], True), _span([r.em_max for r in rows], False)
    bands: list[str] = []
    for r in rows:
        bands += [w for w in wavebands(r.em_min, r.em_max) if w not in bands]
    return Coverage(
        moc=_coarse(moc),
        temporal=(t0, t1) if t0 is not None and t1 is not None else None,
        spectral=energy_interval(e0, e1) if e0 and e1 else None,
        wavebands=tuple(bands),
    )


def _dated(el: etree._Element, created: datetime, updated: datetime) -> etree._Element:
    el.set("created", created.strftime("%Y-%m-%dT%H:%M:%SZ"))
    el.set("updated", updated.strftime("%Y-%m-%dT%H:%M:%SZ"))
    for date in el.findall("curation/date"):
        date.text = updated.strftime("%Y-%m-%d")
    return el


def _unique(values: Sequence[str | None]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))


async def published_records(
    pool: AsyncConnectionPool, site: Site, *, capabilities: Sequence[etree._Element], tableset: bytes,
    cache: MocCache, moc_order: int, book: DatestampBook, oai_path: str, page_size: int,
    tap_url: str, sia_url: str,
) -> Published:
    """All records of the site as an anonymous harvester sees them."""
    async with session(pool, ANONYMOUS, timeout=60.0) as conn:
        summaries = await survey_summaries(conn)
    by_survey: dict[str, list[SurveySummary]] = {}
    for row in summaries:
        by_survey.setdefault(row.survey, []).append(row)
    placeholder = datetime(2000, 1, 1)
    total = MOC.new_empty(moc_order)
    surveys: list[etree._Element] = []
    for name, rows in by_survey.items():
        rows.sort(key=lambda r: (r.em_min is None, r.em_min or 0.0, r.band))  # bands by wavelength
        moc = await survey_moc(pool, cache, ANONYMOUS, name, None, moc_order)
        total = total.union(moc)
        info = SurveyInfo(
            name=name,
            description="\n".join(_unique([r.description for r in rows])) or f"The {name} survey",
            bands=tuple(r.band.split("|", 1)[-1].strip() or r.band for r in rows),
            datasets=sum(r.datasets for r in rows),
            coverage=_coverage(rows, moc),
            facilities=_unique([r.facility for r in rows]),
            instruments=_unique([r.instrument for r in rows]),
        )
        surveys.append(survey_record(site, info, tap_url=tap_url, sia_url=sia_url,
                                     created=placeholder, updated=placeholder))
    service = service_record(
        site, capabilities, _coverage(summaries, total) if summaries else None, tableset,
        created=placeholder, updated=placeholder,
        facilities=_unique([r.facility for r in summaries]), instruments=_unique([r.instrument for r in summaries]))
    registry = registry_record(site, oai_path, page_size, created=placeholder, updated=placeholder)
    authority = authority_record(site, created=placeholder, updated=placeholder)
    elements = [authority, registry, service, *surveys]
    dates = book.stamp({el.findtext("identifier"): content_digest(el) for el in elements})
    records = []
    for el in elements:
        ident = el.findtext("identifier")
        created, updated = dates[ident]
        records.append(Record(ident, updated, _dated(el, created, updated)))
    records += [Record(ident, when, None) for ident, when in book.deleted().items()]
    return Published(records, IdentifyInfo(site.title + " publishing registry",
                                           site.curation.contact_email or "", registry))
