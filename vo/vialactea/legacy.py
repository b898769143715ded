"""The legacy VLKB FITS-DB API the ViaLactea client still calls: ``vlkb_search``, ``vlkb_cutout``, ``vlkb_merge``.

:class:`LegacyQuery` parses the parameters shared by the three (``l``, ``b`` and ``r`` or
``dl``/``db``, degrees, Galactic; ``dl``/``db`` are **full** widths here, unlike the SIA
``RANGE`` the newer client sends; ``vl``/``vu`` LSRK velocity in km/s; ``surveyname``,
``species``, ``transition``) and says how the same request reads as SODA parameters, so cutouts
and merges are plain SODA jobs. :func:`search_sql` finds the datasets meeting the region with
their Starlink AST overlap code (:func:`vo.sia.overlap_code_sql`), and the writers build the
pretty-printed XML the client reads token by token (``xmlparser.cpp``): whitespace text nodes
between elements, ``<RestFreq>`` last in each ``<survey>`` header, ``<P1>``..``<P4>`` corners.
No HTTP here; :func:`answer_search` runs the SQL in the caller's session.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import groupby
from urllib.parse import quote

import numpy as np
from astropy.io import fits
from astropy.io.votable import parse_single_table
from lxml import etree
from psycopg import sql
from psycopg.rows import class_row
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict

from vo.caller import Caller, session
from vo.dali import DaliParams
from vo.errors import UsageError
from vo.shapes import Circle, Interval, Range, format_number, parse_number
from vo.sia import overlap_code_sql, region_literal
from vo.uws.model import JobResult
from vo.uws.results import ResultStore
from vo.xmlns import xml_safe

__all__ = [
    "cut_entries", "null_percent",
    "OVERLAP", "LegacyQuery", "SearchRow", "answer_search", "cut_xml", "legacy_url", "search_sql", "search_xml", "who",
]

#: Starlink AST ``astOverlap`` codes, as the legacy search describes them
OVERLAP = {
    0: "the overlap cannot be determined",
    1: "no overlap",
    2: "the dataset lies inside the region",
    3: "the region lies inside the dataset",
    4: "partial overlap",
    5: "the dataset and the region are identical",
    6: "the dataset is the negation of the region",
}
#: the radius of a point search (r=0): a circle far below any pixel
_POINT = 1e-7
#: the bound of vl and vu, km/s: the client's own "any velocity" is -500000..500000 (beyond light, so
#: no physical bound can apply), and past this nothing is found that a smaller value would not find
_VELOCITY_MAX = 1e9


class LegacyQuery(BaseModel):
    """A legacy request: a Galactic cone or box, an optional velocity range and sub-survey names."""

    model_config = ConfigDict(frozen=True)
    l: float  # noqa: E741 - the API's own parameter name
    b: float
    r: float | None = None
    dl: float | None = None
    db: float | None = None
    vl: float | None = None
    vu: float | None = None
    surveyname: str | None = None
    species: str | None = None
    transition: str | None = None

    @classmethod
    def from_params(cls, raw: Mapping[str, list[str]]) -> LegacyQuery:
        """Validate the (case-folded) parameters; each problem is a UsageError naming the parameter."""

        p = DaliParams(raw)

        def number(name: str, bound: float | None = None) -> float | None:
            text = p.single(name)
            return None if text is None else parse_number(text, name, lo=None if bound is None else -bound,
                                                           hi=bound)

        lon, lat = number("l"), number("b")
        if lon is None or lat is None:
            raise UsageError(f"{'l' if lon is None else 'b'}: missing; give the Galactic position in degrees")
        r, dl, db = number("r"), number("dl"), number("db")
        if r is None and (dl is None or db is None):
            raise UsageError("r: missing; give a radius r, or the full widths dl and db (degrees)")
        if r is not None and r < 0:
            raise UsageError(f"r: must not be negative, got {format_number(r)}")
        for name, value in (("dl", dl), ("db", db)):
            if r is None and value is not None and value <= 0:
                raise UsageError(f"{name}: must be positive, got {format_number(value)}")
        vl, vu = number("vl", _VELOCITY_MAX), number("vu", _VELOCITY_MAX)
        if (vl is None) != (vu is None):
            raise UsageError(f"{'vu' if vu is None else 'vl'}: missing; give both vl and vu (km/s)")
        if vl is not None and vu is not None and vl > vu:
            raise UsageError(f"vl: {format_number(vl)} is greater than vu {format_number(vu)}")
        q = cls(l=lon, b=lat, r=r, dl=None if r is not None else dl, db=None if r is not None else db, vl=vl, vu=vu,
                surveyname=p.single("surveyname"), species=p.single("species"), transition=p.single("transition"))
        q.region()  # the shape checks the numbers (latitude, longitude range)
        return q

    def region(self) -> Circle | Range:
        """The region as a SODA/SIA shape (a box for dl/db, whose full widths are halved here)."""
        if self.r is not None:
            return Circle.parse(" ".join(map(format_number, (self.l, self.b, self.r or _POINT))), "r")
        assert self.dl is not None and self.db is not None
        lat1, lat2 = max(self.b - self.db / 2, -90.0), min(self.b + self.db / 2, 90.0)
        return Range.parse(" ".join(map(format_number, (self.l - self.dl / 2, self.l + self.dl / 2, lat1, lat2))),
                           "dl")

    def velocity(self) -> Interval | None:
        return None if self.vl is None or self.vu is None else Interval(lo=self.vl, hi=self.vu)

    def soda_params(self, dids: Sequence[str], *, merge: bool = False) -> dict[str, list[str]]:
        """The SODA job parameters of a cutout (one DID) or a merge of this region."""
        params = {"ID": list(dids), "POS": [self.region().to_text()], "POSSYS": ["GALACTIC"]}
        velo = self.velocity()
        if velo is not None:
            params["VELO"] = [velo.to_text()]
        if merge:
            params["MERGE"] = ["true"]
        return params

    def echo(self) -> dict[str, str]:
        """The request as the ``<input>`` element echoes it."""
        names = ("l", "b", "r", "dl", "db", "vl", "vu", "surveyname", "species", "transition")
        out = {}
        for name in names:
            value = getattr(self, name)
            if value is not None:
                out[name] = format_number(value) if isinstance(value, float) else value
        return out

    def query_string(self) -> str:
        """The region part of a legacy URL, raw enough that a client re-encoding it still works."""
        return "&".join(f"{k}={_q(v)}" for k, v in self.echo().items()
                        if k not in ("surveyname", "species", "transition"))


def _q(value: str) -> str:
    # ':' '/' '?' ';' stay raw: the client percent-encodes every value again, so an encoded DID
    # would arrive double-encoded; raw, they are still valid in a query (RFC 3986 section 3.4)
    return quote(value, safe=":/?;,")


def legacy_url(base: str, endpoint: str, q: LegacyQuery, **extra: str) -> str:
    """``{base}/{endpoint}?pubdid=...&l=...``: a cutout or mosaic URL the client follows as given."""
    head = "&".join(f"{k}={_q(v)}" for k, v in extra.items())
    return f"{base}/{endpoint}?{head}&{q.query_string()}"


@dataclass(frozen=True)
class SearchRow:
    """One dataset meeting the region."""

    survey: str
    species: str
    transition: str
    description: str | None
    rest_frequency: float | None
    velocity_unit: str | None
    did: str
    code: int
    corners: list[float] | None


def search_sql(q: LegacyQuery) -> sql.Composed:
    """The datasets meeting ``q``'s region (and velocity range, for cubes), with their overlap code.

    Sub-survey names come from ``obs_title`` ("species | transition"), so a dataset is found even
    when its survey has no ``datasets.surveys`` row. Run it as the query role with the caller's
    groups: row-level security hides the surveys the caller may not read.
    """
    region = q.region()
    literal = region_literal(region)
    if literal is None:
        raise UsageError("r: the region is too large; search at most 90 degrees around a position")
    species = "split_part(o.obs_title, ' | ', 1)"
    transition = "substr(o.obs_title, length(split_part(o.obs_title, ' | ', 1)) + 4)"
    where: list[sql.Composable] = [sql.SQL(f"o.s_region_galactic && {literal}")]
    velo = q.velocity()
    if velo is not None:
        where.append(sql.SQL("(o.vel_min IS NULL OR (o.vel_min <= {} AND o.vel_max >= {}))").format(
            sql.Literal(velo.hi), sql.Literal(velo.lo)))
    for column, value in (("o.obs_collection", q.surveyname), (species, q.species), (transition, q.transition)):
        if value is not None:
            where.append(sql.SQL(column + " = {}").format(sql.Literal(value)))
    return sql.SQL(
        "SELECT o.obs_collection AS survey, {species} AS species, {transition} AS transition, "
        "s.description, s.rest_frequency, s.velocity_unit, o.obs_publisher_did AS did, "
        "{code} AS code, vlkb_dali_polygon(o.s_region_galactic) AS corners "
        "FROM ivoa.obscore o LEFT JOIN datasets.surveys s ON s.name = o.obs_collection "
        "AND s.species || ' | ' || s.transition = o.obs_title "
        "WHERE {where} ORDER BY 1, 2, 3, o.obs_publisher_did"
    ).format(species=sql.SQL(species), transition=sql.SQL(transition),
             code=sql.SQL(overlap_code_sql("o.s_region_galactic", region)), where=sql.SQL(" AND ").join(where))


# -- XML -------------------------------------------------------------------------------------------
def _el(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    # xml_safe: the request is echoed, and a control character in it would make lxml refuse the text
    el = etree.SubElement(parent, tag, {k: xml_safe(v) for k, v in attrs.items()})
    if text is not None:
        el.text = xml_safe(text)
    return el


def _number(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else format_number(value)


def who(caller: Caller) -> dict[str, str]:
    """The caller as the answers' ``<input>`` element echoes them."""
    return {"username": caller.user or "", "policy": "PRIVATE" if caller.groups else "PUBLIC",
            "groupnames": " ".join(caller.groups)}


def _head(description: str, q: LegacyQuery, who: Mapping[str, str], msg: str = "") -> etree._Element:
    root = etree.Element("results")
    _el(root, "description", description)
    inp = _el(root, "input")
    for key, value in {**q.echo(), **who}.items():
        _el(inp, key, value)
    _el(root, "msg", msg)
    return root


def _bytes(root: etree._Element) -> bytes:
    # pretty-printed: the client reads fixed numbers of tokens, whitespace nodes included
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def search_xml(rows: Sequence[SearchRow], q: LegacyQuery, who: Mapping[str, str], base: str) -> bytes:
    """The ``vlkb_search`` answer: datasets grouped by sub-survey, each with its overlap code, its
    corners, a cutout URL and, where a sub-survey has several datasets in the region, a mosaic URL."""
    root = _head("datasets of the knowledge base meeting the region", q, who)
    meeting = [r for r in rows if r.code != 1]
    _el(root, "DatacubeCount", str(len(rows)))
    for (survey, species, transition), group in groupby(rows, key=lambda r: (r.survey, r.species, r.transition)):
        members = list(group)
        first = members[0]
        node = _el(root, "survey")
        _el(node, "Description", first.description or "")
        _el(node, "Survey", survey)
        _el(node, "Species", species)
        _el(node, "Transition", transition)
        _el(node, "VelocityUnit", first.velocity_unit or "")
        _el(node, "RestFreq", _number(first.rest_frequency))  # must exist and come last (parseSurvey)
        mergeable = [r.did for r in meeting if (r.survey, r.species, r.transition) == (survey, species, transition)]
        mosaic = None
        if len(mergeable) > 1:
            mosaic = legacy_url(base, "vlkb_merge", q, pubdid=";".join(mergeable), surveyname=survey,
                                species=species, transition=transition)
        for r in members:
            cube = _el(node, "datacube")
            overlap = _el(cube, "overlap")
            _el(overlap, "description", OVERLAP.get(r.code, ""))
            _el(overlap, "code", str(r.code))
            _el(cube, "PublisherDID", r.did)
            _el(cube, "URL", legacy_url(base, "vlkb_cutout", q, pubdid=r.did), type="cutout")
            if mosaic is not None and r.code != 1:
                _el(cube, "URL", mosaic, type="mosaic")
            frame = _el(_el(cube, "vertices"), "SkyCoordSystem")
            corners = (r.corners or [])[:8]
            for n, (lon, lat) in enumerate(zip(corners[0::2], corners[1::2], strict=True), start=1):
                point = _el(frame, f"P{n}")
                _el(point, "longitude", _number(lon))
                _el(point, "latitude", _number(lat))
    return _bytes(root)


def cut_xml(description: str, q: LegacyQuery, who: Mapping[str, str], cuts: Sequence[Mapping[str, str]],
            url: str, null_percent: float | None = None) -> bytes:
    """The ``vlkb_cutout``/``vlkb_merge`` answer: a ``<CUT>`` per input, the download ``<URL>``, and
    the share of undefined pixels when asked for (the client reports an error from 95 %)."""
    root = _head(description, q, who)
    for cut in cuts:
        node = _el(root, "CUT")
        for key, value in cut.items():
            _el(node, key, value)
    _el(root, "URL", url)
    if null_percent is not None:
        nulls = _el(root, "nullValues")
        _el(nulls, "description", "share of undefined (NaN) pixels in the output, percent")
        _el(nulls, "percent", f"{null_percent:.2f}")
    return _bytes(root)


async def answer_search(pool: AsyncConnectionPool, raw: Mapping[str, list[str]], caller: Caller, base: str, *,
                        timeout: float) -> bytes:
    """The ``vlkb_search`` answer for the (case-folded) parameters ``raw``: :func:`search_sql` run in
    ``caller``'s session (row-level security hides the surveys they may not read, as in TAP and
    SIA), written by :func:`search_xml` with URLs under ``base`` (the public datasets base)."""
    q = LegacyQuery.from_params(raw)
    statement = search_sql(q)
    async with session(pool, caller, timeout=timeout) as conn, conn.cursor(row_factory=class_row(SearchRow)) as cur:
        await cur.execute(statement)
        rows = await cur.fetchall()
    return search_xml(rows, q, who(caller), base)


def cut_entries(store: ResultStore, result: JobResult) -> list[dict[str, str]]:
    """The ``<CUT>`` entries of a legacy cutout or merge, from its job's manifest result."""
    table = parse_single_table(io.BytesIO(b"".join(store.read(result.location)))).to_table()
    # a merge row names every input it used, space-separated: one <CUT> per input
    return [{"PublisherDID": did, "region": str(row["region"]), "status": str(row["status"]),
             "message": str(row["message"])} for row in table for did in str(row["id"]).split()]


def null_percent(store: ResultStore, result: JobResult) -> float:
    """``nullvals``: the share of undefined (NaN) pixels of a job's FITS result, percent."""
    with fits.open(io.BytesIO(b"".join(store.read(result.location)))) as hdus:
        data = hdus[0].data
        return 0.0 if data is None or data.size == 0 else float(100.0 * np.isnan(data).sum() / data.size)
