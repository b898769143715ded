"""DataLink 1.1 links documents: for each dataset ID, its file, its SODA cutout services and a preview.

:class:`LinksQuery` parses the ``{links}`` parameters (``ID``, repeatable; ``RESPONSEFORMAT``;
the ViaLactea client's ``must_include_soda`` is accepted and ignored). :func:`links_document`
writes the VOTable (DataLink 1.1 section 3.2): a ``RESOURCE type="results"`` with the standard
columns and, for every dataset found, the rows

- ``#this``: the FITS file, served at ``{base}/datalink/files/{key}``;
- ``#cutout`` twice, with ``service_def`` ``soda-sync`` and ``soda-async``;
- ``#preview``: a PNG quick-look at ``{base}/datalink/preview/{key}``;

where ``key`` is the DID's part after ``?`` (``db.datasets.did_key``). An ID that is unknown
(or belongs to a survey the caller may not read) gets one row whose ``error_message`` starts
with ``NotFoundFault`` (section 3.4), so one bad ID never spoils the whole document. Then come
the two SODA service descriptors (``RESOURCE type="meta" utype="adhoc:service"``, section 4)
with the input parameters of SODA 1.0 section 3 and the vlkb extensions POSSYS and VELO; their
xtypes are those pyvo converts (``pyvo/dal/params.py``: circle, polygon, interval).

No HTTP and no SQL here: the caller looks the datasets up and passes the base URL.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass
from urllib.parse import quote

import structlog
from lxml import etree
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict

from db.datasets import did_key
from vo import storage
from vo.caller import Caller, Dataset, dataset_by_key, datasets
from vo.dali import POSSYS, DaliParams
from vo.errors import NotFoundError, UsageError
from vo.shapes import format_number
from vo.sia import POL_STATES
from vo.xmlns import NS, E, tostring

__all__ = [
    "DATALINK_MEDIA",
    "MAX_IDS",
    "SODA_ASYNC",
    "SODA_SYNC",
    "LinksQuery",
    "dataset_file",
    "file_url",
    "links",
    "links_document",
    "links_url",
    "preview_url",
    "preview_ref",
    "links_ref",
    "public_url",
]

log = structlog.get_logger("vlkb.datalink")

DATALINK_MEDIA = "application/x-votable+xml;content=datalink"
STD_LINKS = "ivo://ivoa.net/std/DataLink#links-1.1"
SODA_SYNC = "ivo://ivoa.net/std/SODA#sync-1.0"
SODA_ASYNC = "ivo://ivoa.net/std/SODA#async-1.0"
#: IDs one request may ask for; DataLink lets a service set the limit (section 3.1).
MAX_IDS = 100

_FORMATS = {
    "application/x-votable+xml;content=datalink", "application/x-votable+xml", "votable", "text/xml",
    "application/x-votable+xml;serialization=tabledata", "votable/td",
}


class LinksQuery(BaseModel):
    """A ``{links}`` request (DataLink 1.1 section 3.1): the IDs, in order, without repeats."""

    model_config = ConfigDict(frozen=True)
    ids: tuple[str, ...]

    @classmethod
    def from_params(cls, raw: dict[str, list[str]]) -> LinksQuery:
        """Validate the parameters; every problem is a UsageError naming the parameter."""
        p = DaliParams(raw)
        ids = list(dict.fromkeys(p.repeated("ID")))
        if not ids:
            raise UsageError("ID: missing; give the publisher DID of at least one dataset")
        if len(ids) > MAX_IDS:
            raise UsageError(f"ID: at most {MAX_IDS} IDs per request, got {len(ids)}")
        fmt = p.single("RESPONSEFORMAT")
        if fmt is not None and "".join(fmt.split()).lower() not in _FORMATS:
            raise UsageError(f"RESPONSEFORMAT: unsupported format {fmt!r}; use {DATALINK_MEDIA}")
        return cls(ids=tuple(ids))


def links_ref(did: str) -> str:
    """The links document of dataset ``did`` relative to the service's base URL: what ObsCore
    ``access_url`` stores (made absolute when answering, ``vlkb_public_url``)."""
    return f"datalink/links?ID={quote(did, safe='')}"


def preview_ref(did: str) -> str:
    """The PNG preview of dataset ``did`` relative to the base URL: what ObsCore ``preview`` stores."""
    return f"datalink/preview/{quote(did_key(did), safe='/')}"


def public_url(base: str, ref: str) -> str:
    """``ref`` (relative to the service) under the public base URL ``base``; the Python twin of
    ``vlkb_public_url`` (db/sql/adql_functions.sql)."""
    return f"{base.rstrip('/')}/{ref.lstrip('/')}"


def links_url(base: str, did: str) -> str:
    """The links document of dataset ``did`` (ObsCore ``access_url``)."""
    return public_url(base, links_ref(did))


def file_url(base: str, did: str) -> str:
    """Where the FITS file of dataset ``did`` is served (``#this``)."""
    return f"{base.rstrip('/')}/datalink/files/{quote(did_key(did), safe='/')}"


def preview_url(base: str, did: str) -> str:
    """Where the PNG preview of dataset ``did`` is served (``#preview``, ObsCore ``preview``)."""
    return public_url(base, preview_ref(did))


# -- the document ----------------------------------------------------------------------------------
def V(tag: str, *children: etree._Element | str | None, **attrib: str | None) -> etree._Element:
    """A VOTable element (the VOTable namespace is the document's default one)."""
    return E(f"vot:{tag}", *children, attrib=attrib)


@dataclass(frozen=True)
class _Field:
    name: str
    datatype: str
    ucd: str
    description: str
    arraysize: str | None = "*"
    unit: str | None = None


#: DataLink 1.1 section 3.2, Table 1, in order; the last two are optional.
_FIELDS = (
    _Field("ID", "char", "meta.id;meta.main", "Input identifier"),
    _Field("access_url", "char", "meta.ref.url", "Link to data or service"),
    _Field("service_def", "char", "meta.ref", "Reference to a service descriptor resource"),
    _Field("error_message", "char", "meta.code.error", "Error if an access_url cannot be created"),
    _Field("semantics", "char", "meta.code", "Term from the DataLink vocabulary: what the link is"),
    _Field("description", "char", "meta.note", "Human-readable description of the link"),
    _Field("content_type", "char", "meta.code.mime", "MIME type of the linked content"),
    _Field("content_length", "long", "phys.size;meta.file", "Size of the linked content", None, "byte"),
    _Field("content_qualifier", "char", "meta.code.class", "Product type of the linked content"),
    _Field("local_semantics", "char", "meta.code", "Service-specific refinement of semantics"),
)
_ID_REF = "dl_id"


@dataclass(frozen=True)
class _Row:
    id: str
    access_url: str | None = None
    service_def: str | None = None
    error_message: str | None = None
    semantics: str | None = None
    description: str | None = None
    content_type: str | None = None
    content_length: int | None = None
    content_qualifier: str | None = None
    local_semantics: str | None = None

    def element(self) -> etree._Element:
        return V("TR", *(V("TD", None if v is None else str(v)) for v in astuple(self)))


def _rows(did: str, ds: Dataset | None, base: str) -> list[_Row]:
    if ds is None:
        # DataLink 1.1 section 3.4: hidden and missing datasets answer alike.
        return [_Row(did, error_message=f"NotFoundFault: {did}: no such dataset", semantics="#this")]
    kind = ds.dataproduct_type or "image"
    what = "spectral cube" if kind == "cube" else "image"
    look = "peak intensity along the spectral axis" if kind == "cube" else "the map"
    return [
        _Row(did, access_url=file_url(base, ds.publisher_did), semantics="#this",
             description=f"The FITS file of this {what}",
             content_type="application/fits", content_length=ds.size, content_qualifier=kind),
        _Row(did, service_def="soda-sync", semantics="#cutout",
             description="SODA cutout of this dataset, returned at once (synchronous)",
             content_type="application/fits", content_qualifier=kind),
        _Row(did, service_def="soda-async", semantics="#cutout",
             description="SODA cutout of this dataset as a UWS job (asynchronous)",
             content_type="application/fits", content_qualifier=kind),
        _Row(did, access_url=preview_url(base, ds.publisher_did), semantics="#preview",
             description=f"PNG quick-look of {look}, with a colour bar", content_type="image/png"),
    ]


def _param(name: str, datatype: str, ucd: str, description: str, *, arraysize: str | None = None,
           xtype: str | None = None, unit: str | None = None, ref: str | None = None,
           values: etree._Element | None = None) -> etree._Element:
    return V("PARAM", V("DESCRIPTION", description), values, name=name, datatype=datatype, arraysize=arraysize,
             xtype=xtype, unit=unit, ucd=ucd, ref=ref, value="")


def _range(lo: float | None, hi: float | None) -> etree._Element | None:
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    return V("VALUES", V("MIN", value=format_number(lo)), V("MAX", value=format_number(hi)))


def _options(values: Sequence[str]) -> etree._Element:
    return V("VALUES", *(V("OPTION", value=v) for v in values))


def _input_params(one: Dataset | None) -> list[etree._Element]:
    """The SODA 1.0 section 3 parameters; ``one`` (when a single dataset was asked) bounds them."""
    states: tuple[str, ...] = POL_STATES
    if one is not None and one.pol_states:
        states = tuple(s for s in one.pol_states.split("/") if s)
    cube = one is not None and one.dataproduct_type == "cube"
    return [
        _param("ID", "char", "meta.id;meta.dataset", "Publisher DID of the dataset to cut", arraysize="*",
               ref=_ID_REF),
        _param("POS", "char", "pos.outline;obs", "Region to cut: CIRCLE lon lat r, RANGE lon1 lon2 lat1 lat2 or "
               "POLYGON lon1 lat1 ... (degrees, frame given by POSSYS)", arraysize="*"),
        _param("CIRCLE", "double", "phys.angArea;obs", "Cone to cut: lon lat radius (frame given by POSSYS)",
               arraysize="3", xtype="circle", unit="deg"),
        _param("POLYGON", "double", "pos.outline;obs", "Polygon to cut: lon1 lat1 lon2 lat2 ... (frame given by "
               "POSSYS)", arraysize="*", xtype="polygon", unit="deg"),
        _param("BAND", "double", "em.wl;stat.interval", "Wavelength interval to cut (vacuum, metres)",
               arraysize="2", xtype="interval", unit="m",
               values=_range(one.em_min, one.em_max) if one is not None else None),
        _param("TIME", "double", "time.interval;obs.exposure", "Time interval to cut (MJD)", arraysize="2",
               xtype="interval", unit="d", values=_range(one.t_min, one.t_max) if one is not None else None),
        _param("POL", "char", "meta.code;phys.polarization", "Polarization states to keep", arraysize="*",
               values=_options(states)),
        _param("PIXELS", "char", "instr.pixel;meta.dataset", "Pixel ranges to cut, per axis: "
               "'[lo:hi]' or '[lo:hi] [lo:hi] ...' (1-based, inclusive)", arraysize="*"),
        _param("POSSYS", "char", "pos.frame", "vlkb extension: frame of POS, CIRCLE and POLYGON (default ICRS)",
               arraysize="*", values=_options(POSSYS)),
        _param("VELO", "double", "spect.dopplerVeloc.radio;stat.interval", "vlkb extension: LSRK radio velocity "
               "interval to cut from a cube (km/s)", arraysize="2", xtype="interval", unit="km/s",
               values=_range(one.vel_min, one.vel_max) if cube and one is not None else None),
    ]


def _descriptor(ident: str, standard_id: str, access_url: str, what: str,
                one: Dataset | None) -> etree._Element:
    return V(
        "RESOURCE",
        V("DESCRIPTION", what),
        V("PARAM", name="standardID", datatype="char", arraysize="*", value=standard_id),
        V("PARAM", name="accessURL", datatype="char", arraysize="*", ucd="meta.ref.url", value=access_url),
        V("GROUP", *_input_params(one), name="inputParams"),
        type="meta", utype="adhoc:service", ID=ident,
    )


def links_document(ids: Sequence[str], found: Mapping[str, Dataset], base: str) -> bytes:
    """The DataLink VOTable for ``ids``; ``found`` holds the datasets the caller may read, by DID."""
    fields = [
        V("FIELD", V("DESCRIPTION", f.description), name=f.name, datatype=f.datatype, arraysize=f.arraysize,
          unit=f.unit, ucd=f.ucd, ID=_ID_REF if f.name == "ID" else None)
        for f in _FIELDS
    ]
    rows = [row.element() for did in ids for row in _rows(did, found.get(did), base)]
    results = V(
        "RESOURCE",
        V("INFO", name="QUERY_STATUS", value="OK"),
        V("INFO", name="standardID", value=STD_LINKS),
        V("TABLE", *fields, V("DATA", V("TABLEDATA", *rows))),
        type="results",
    )
    one = found.get(ids[0]) if len(ids) == 1 else None
    root = E(
        "vot:VOTABLE",
        results,
        _descriptor("soda-sync", SODA_SYNC, f"{base}/soda/sync", "SODA 1.0 synchronous cutouts", one),
        _descriptor("soda-async", SODA_ASYNC, f"{base}/soda/async", "SODA 1.0 asynchronous cutouts (UWS)", one),
        attrib={"version": "1.4"},
        nsmap={None: NS["vot"]},
    )
    return tostring(root)


async def links(pool: AsyncConnectionPool, q: LinksQuery, caller: Caller, base: str) -> bytes:
    """The links document of ``q.ids`` as ``caller`` may see them (absent ones get error rows)."""
    return links_document(q.ids, await datasets(pool, q.ids, caller), base)


async def dataset_file(pool: AsyncConnectionPool, key: str, caller: Caller) -> tuple[Dataset, storage.FileInfo]:
    """The dataset of a file or preview URL's ``key`` that ``caller`` may read, and its file's
    size; NotFoundError when it is absent or its file is gone (the latter logged: an operator's problem)."""
    ds = await dataset_by_key(pool, key, caller)
    if ds is None:
        raise NotFoundError(f"{key}: no such dataset")
    try:
        info = await asyncio.to_thread(storage.file_info, ds.path)
    except (OSError, ValueError, ImportError) as exc:  # gone, unreachable, or a protocol not installed
        log.error("dataset file missing", did=ds.publisher_did, path=ds.path, error=str(exc))
        raise NotFoundError(f"{key}: the file of this dataset is not available") from None
    return ds, info
