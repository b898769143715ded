"""VOResource 1.1 records of this site: its naming authority, its publishing registry, the data
service and one record per survey.

Records are ``ri:Resource`` elements (Registry Interfaces 1.1 section 2.1) built with
:mod:`vo.xmlns`. The capabilities of the service record are the ones its VOSI endpoints publish
(:func:`capability_elements` takes them from the documents :mod:`vo.vosi` writes), so the registry
and ``/capabilities`` never disagree. Survey records follow the IVOA note "Discovering Data
Collections": a ``vs:CatalogResource`` with auxiliary capabilities (``#aux`` standard IDs) pointing
at the service, a coverage (MOC, time, energy, waveband) and an ``IsServedBy`` relationship.
No HTTP and no SQL here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from vo.xmlns import NS, E, qname

__all__ = [
    "Coverage", "Curation", "Site", "SurveyInfo", "authority_record", "capability_elements", "registry_record",
    "service_record", "sia_capability", "survey_record", "wavebands",
]

STD_REGISTRY = "ivo://ivoa.net/std/Registry"
STD_TAP_AUX = "ivo://ivoa.net/std/TAP#aux"
STD_SIA2_AUX = "ivo://ivoa.net/std/SIA#query-aux-2.0"
#: VOSI endpoints are found from the service itself; the record lists the protocol capabilities.
_VOSI_PREFIX = "ivo://ivoa.net/std/VOSI#"
_H_C = 6.62607015e-34 * 299792458.0  # h c in J m: photon energy E = hc / lambda
_NSMAP = {k: NS[k] for k in ("ri", "vr", "vs", "vg", "tr", "sia", "xsi")}


@dataclass(frozen=True)
class Curation:
    """Who publishes the site's resources and whom to ask (VOResource 1.1 section 3.1.2)."""

    publisher: str
    contact_name: str
    contact_email: str | None = None
    publisher_id: str | None = None
    creators: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()
    content_level: tuple[str, ...] = ("Research",)
    reference_url: str | None = None
    rights: str | None = None
    rights_uri: str | None = None


@dataclass(frozen=True)
class Site:
    """What every record of the site shares: authority, base URL, names and curation."""

    authority: str
    base_url: str
    title: str
    description: str
    curation: Curation
    short_name: str = "vlkb"

    @property
    def service_id(self) -> str:
        """The data service's identifier; dataset DIDs (``ivo://AUTH/vlkb?key``) hang below it."""
        return f"ivo://{self.authority}/vlkb"

    @property
    def registry_id(self) -> str:
        return f"ivo://{self.authority}/vlkb/registry"

    @property
    def authority_id(self) -> str:
        return f"ivo://{self.authority}"

    def survey_id(self, survey: str) -> str:
        return f"ivo://{self.authority}/vlkb/surveys/{slug(survey)}"


@dataclass(frozen=True)
class Coverage:
    """VODataService 1.2 coverage: an ASCII MOC (ICRS), MJD and photon-energy (J) intervals, wavebands."""

    moc: str | None = None
    temporal: tuple[float, float] | None = None
    spectral: tuple[float, float] | None = None
    wavebands: tuple[str, ...] = ()

    def element(self) -> etree._Element:
        return E(
            "coverage",
            E("spatial", self.moc) if self.moc else None,
            E("temporal", _interval(self.temporal)) if self.temporal else None,
            E("spectral", _interval(self.spectral)) if self.spectral else None,
            *[E("waveband", w) for w in self.wavebands],
        )


@dataclass(frozen=True)
class SurveyInfo:
    """One survey as a record describes it (all its bands together)."""

    name: str
    description: str
    bands: tuple[str, ...]
    datasets: int
    coverage: Coverage
    facilities: tuple[str, ...] = ()
    instruments: tuple[str, ...] = ()


def slug(name: str) -> str:
    """The identifier part of a survey name: ``hi-gal`` for ``Hi-GAL``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "survey"


def _interval(pair: tuple[float, float]) -> str:
    return f"{float(pair[0])!r} {float(pair[1])!r}"


def energy_interval(em_min: float, em_max: float) -> tuple[float, float]:
    """Wavelengths (m) to the photon-energy interval (J) of VODataService 1.2 ``spectral``."""
    return (_H_C / em_max, _H_C / em_min)


# Limits (m) of the IVOA messenger vocabulary's bands this service can hold.
_BANDS = (("Radio", 1e-2, float("inf")), ("Millimeter", 1e-4, 1e-2), ("Infrared", 1e-6, 1e-4),
          ("Optical", 3e-7, 1e-6), ("UV", 1e-8, 3e-7), ("X-ray", 1e-11, 1e-8))


def wavebands(em_min: float | None, em_max: float | None) -> tuple[str, ...]:
    """The messenger bands an interval of wavelengths (m) overlaps."""
    if em_min is None or em_max is None:
        return ()
    return tuple(name for name, lo, hi in _BANDS if em_min < hi and em_max > lo)


def _stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _resource(site: Site, xsi_type: str, identifier: str, title: str, description: str, *,
              created: datetime, updated: datetime, short_name: str | None = None,
              content_type: str | None = None, relationships: Sequence[tuple[str, str, str]] = (),
              ) -> etree._Element:
    """The ``ri:Resource`` head every record shares (VOResource 1.1 section 3.1)."""
    cur = site.curation
    return E(
        "ri:Resource",
        E("title", title),
        E("shortName", short_name) if short_name else None,
        E("identifier", identifier),
        E(
            "curation",
            E("publisher", cur.publisher, attrib={"ivo-id": cur.publisher_id}),
            *[E("creator", E("name", c)) for c in cur.creators],
            E("date", _stamp(updated)[:10], attrib={"role": "updated"}),
            E("contact", E("name", cur.contact_name), E("email", cur.contact_email) if cur.contact_email else None),
        ),
        E(
            "content",
            *[E("subject", s) for s in (cur.subjects or ("astronomy",))],
            E("description", description),
            E("referenceURL", cur.reference_url or site.base_url + "/"),
            E("type", content_type) if content_type else None,
            *[E("contentLevel", c) for c in cur.content_level],
            *[E("relationship", E("relationshipType", kind), E("relatedResource", name, attrib={"ivo-id": ivo_id}))
              for kind, ivo_id, name in relationships],
        ),
        attrib={qname("xsi", "type"): xsi_type, "created": _stamp(created), "updated": _stamp(updated),
                "status": "active", "version": "1.1"},
        nsmap=_NSMAP,
    )


def _rights(site: Site) -> etree._Element | None:
    cur = site.curation
    if not cur.rights:
        return None
    return E("rights", cur.rights, attrib={"rightsURI": cur.rights_uri})


def capability_elements(document: bytes) -> list[etree._Element]:
    """The protocol capabilities of a VOSI capabilities document (its VOSI ones left out)."""
    root = etree.fromstring(document)
    return [c for c in root.findall("capability") if not c.get("standardID", "").startswith(_VOSI_PREFIX)]


def sia_capability(plain: etree._Element, *, max_records: int, service_type: str = "Atlas") -> etree._Element:
    """The SIA 2.0 capability of a record, typed ``sia:SimpleImageAccess`` (SimpleDALRegExt 1.1
    section 3.2): the plain VOSI capability plus the image service type and record limit."""
    cap = etree.fromstring(etree.tostring(plain))
    cap.set(qname("xsi", "type"), "sia:SimpleImageAccess")
    cap.append(E("imageServiceType", service_type))
    cap.append(E("maxRecords", str(max_records)))
    return cap


def authority_record(site: Site, *, created: datetime, updated: datetime) -> etree._Element:
    """The ``vg:Authority`` record claiming ``site.authority`` (Registry Interfaces 1.1 section 2.3)."""
    res = _resource(site, "vg:Authority", site.authority_id, f"{site.curation.publisher} naming authority",
                    f"The IVOA naming authority {site.authority}, under which {site.title} registers its "
                    "services and data collections.", created=created, updated=updated)
    res.append(E("managingOrg", site.curation.publisher, attrib={"ivo-id": site.curation.publisher_id}))
    return res


def registry_record(site: Site, oai_path: str, max_records: int, *, created: datetime,
                    updated: datetime) -> etree._Element:
    """The ``vg:Registry`` record of the site's OAI-PMH publishing registry (RI 1.1 section 2.2)."""
    res = _resource(site, "vg:Registry", site.registry_id, f"{site.title} publishing registry",
                    f"The publishing registry of {site.title}: its resource records over OAI-PMH, "
                    "for harvesting by the IVOA Registry of Registries and full registries.",
                    created=created, updated=updated, content_type="Registry")
    res.append(E(
        "capability",
        E("interface", E("accessURL", site.base_url + oai_path, attrib={"use": "base"}),
          attrib={qname("xsi", "type"): "vg:OAIHTTP", "role": "std", "version": "1.0"}),
        E("maxRecords", str(max_records)),
        attrib={qname("xsi", "type"): "vg:Harvest", "standardID": STD_REGISTRY},
    ))
    res.append(E("full", "false"))
    res.append(E("managedAuthority", site.authority))
    return res


def service_record(site: Site, capabilities: Sequence[etree._Element], coverage: Coverage | None,
                   tableset: bytes | None, *, created: datetime, updated: datetime,
                   facilities: Sequence[str] = (), instruments: Sequence[str] = ()) -> etree._Element:
    """The ``vs:CatalogService`` record of the data service: TAP, SIA, SODA and DataLink
    capabilities, the coverage of its public data and its tableset (VODataService 1.2 section 3.4)."""
    res = _resource(site, "vs:CatalogService", site.service_id, site.title, site.description,
                    created=created, updated=updated, short_name=site.short_name[:16], content_type="Archive")
    if (r := _rights(site)) is not None:
        res.append(r)
    for cap in capabilities:
        res.append(etree.fromstring(etree.tostring(cap)))
    res.extend(E("facility", f) for f in facilities)
    res.extend(E("instrument", i) for i in instruments)
    if coverage is not None:
        res.append(coverage.element())
    if tableset is not None:
        ts = etree.fromstring(tableset)
        ts.tag = "tableset"  # vosi:tableset in VOSI, an unqualified vs:TableSet in a record
        res.append(ts)
    return res


def survey_record(site: Site, survey: SurveyInfo, *, tap_url: str, sia_url: str, created: datetime,
                  updated: datetime) -> etree._Element:
    """The ``vs:CatalogResource`` record of one survey's images and cubes, served by the service."""
    bands = ", ".join(survey.bands)
    description = (f"{survey.description}\n\n{survey.datasets} images and cubes in the bands {bands}, "
                   f"published in ivoa.obscore (obs_collection = '{survey.name}') of {site.title}.")
    res = _resource(site, "vs:CatalogResource", site.survey_id(survey.name), f"{survey.name} ({site.title})",
                    description, created=created, updated=updated, short_name=survey.name[:16], content_type="Survey",
                    relationships=[("IsServedBy", site.service_id, site.title)])
    if (r := _rights(site)) is not None:
        res.append(r)
    res.append(E("capability",
                 E("interface", E("accessURL", tap_url, attrib={"use": "base"}),
                   attrib={qname("xsi", "type"): "vs:ParamHTTP", "role": "std", "version": "1.1"}),
                 attrib={"standardID": STD_TAP_AUX}))
    res.append(E("capability",
                 E("interface", E("accessURL", sia_url, attrib={"use": "base"}),
                   attrib={qname("xsi", "type"): "vs:ParamHTTP", "role": "std", "version": "2.0"}),
                 attrib={"standardID": STD_SIA2_AUX}))
    res.extend(E("facility", f) for f in survey.facilities)
    res.extend(E("instrument", i) for i in survey.instruments)
    res.append(survey.coverage.element())
    return res
