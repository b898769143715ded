"""OAI-PMH 2.0 for an IVOA publishing registry (Registry Interfaces 1.1 section 3).

:func:`respond` answers one request (its arguments as a case-preserving ``dict[str, list[str]]``:
OAI-PMH argument names are case-sensitive) from a list of :class:`Record`. Errors are the
protocol's own (section 3.6: an ``error`` element with a code, HTTP 200), not DALI documents:
harvesters read those. Resumption tokens are stateless: they carry the request and the position,
plus a digest of the matching identifiers, so a list that changed between two pages answers
``badResumptionToken`` instead of skipping or repeating records. No HTTP here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from lxml import etree

from vo.xmlns import NS, E, qname, tostring

__all__ = ["METADATA_FORMATS", "IdentifyInfo", "OaiError", "Record", "dublin_core", "respond"]

IVO_MANAGED = "ivo_managed"
#: metadataPrefix -> (schema, namespace) (section 4.4; RI 1.1 section 3.1.2 for ivo_vor)
METADATA_FORMATS = {
    "ivo_vor": ("http://www.ivoa.net/xml/RegistryInterface/RegistryInterface-v1.0.xsd", NS["ri"]),
    "oai_dc": ("http://www.openarchives.org/OAI/2.0/oai_dc.xsd", NS["oai_dc"]),
}
_SETS = {IVO_MANAGED: "Resources managed by this registry (IVOA Registry Interfaces 1.1 section 3.1.3)"}
_ARGS = {
    "Identify": (set(), set()),
    "ListMetadataFormats": (set(), {"identifier"}),
    "ListSets": (set(), set()),
    "GetRecord": ({"identifier", "metadataPrefix"}, set()),
    "ListIdentifiers": ({"metadataPrefix"}, {"from", "until", "set"}),
    "ListRecords": ({"metadataPrefix"}, {"from", "until", "set"}),
}
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_SECOND = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


class OaiError(Exception):
    """An OAI-PMH error condition (section 3.6): its code and a message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Record:
    """One resource record: its identifier, datestamp, sets and ``ri:Resource`` element; a deleted
    record (section 2.5.1) has no element and its datestamp is when it went away."""

    identifier: str
    datestamp: datetime
    resource: etree._Element | None
    sets: tuple[str, ...] = (IVO_MANAGED,)

    @property
    def deleted(self) -> bool:
        return self.resource is None


@dataclass(frozen=True)
class IdentifyInfo:
    """The repository's description (section 4.2) and its own ``vg:Registry`` record."""

    name: str
    admin_email: str
    registry: etree._Element


def _stamp(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(name: str, value: str, *, end: bool) -> tuple[datetime, str]:
    """A ``from``/``until`` value (section 3.3.1) and its granularity; a day ``until`` means its end."""
    if _SECOND.fullmatch(value):
        fmt, gran = "%Y-%m-%dT%H:%M:%SZ", "second"
    elif _DAY.fullmatch(value):
        fmt, gran = "%Y-%m-%d", "day"
    else:
        raise OaiError("badArgument", f"{name}: expected YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ, got {value!r}")
    try:
        t = datetime.strptime(value, fmt).replace(tzinfo=UTC)
    except ValueError:
        raise OaiError("badArgument", f"{name}: not a date: {value!r}") from None
    if gran == "day" and end:
        t += timedelta(days=1) - timedelta(seconds=1)
    return t, gran


def dublin_core(resource: etree._Element) -> etree._Element:
    """The ``oai_dc`` form of a VOResource record (section 6.2): title, identifier, subjects,
    description, publisher, creators, date and type read from the record itself."""
    def texts(path: str) -> list[str]:
        return [el.text for el in resource.findall(path) if el.text]

    dc = [
        *[E("dc:title", t) for t in texts("title")],
        *[E("dc:creator", t) for t in texts("curation/creator/name")],
        *[E("dc:subject", t) for t in texts("content/subject")],
        *[E("dc:description", t) for t in texts("content/description")],
        *[E("dc:publisher", t) for t in texts("curation/publisher")],
        E("dc:date", resource.get("updated")),
        *[E("dc:type", t) for t in texts("content/type")],
        *[E("dc:identifier", t) for t in texts("identifier")],
        *[E("dc:identifier", t) for t in texts("content/referenceURL")],
    ]
    location = f"{NS['oai_dc']} {METADATA_FORMATS['oai_dc'][0]}"
    return E("oai_dc:dc", *dc, attrib={qname("xsi", "schemaLocation"): location},
             nsmap={"oai_dc": NS["oai_dc"], "dc": NS["dc"], "xsi": NS["xsi"]})


def _header(rec: Record) -> etree._Element:
    return E("oai:header", E("oai:identifier", rec.identifier), E("oai:datestamp", _stamp(rec.datestamp)),
             *[E("oai:setSpec", s) for s in rec.sets], attrib={"status": "deleted" if rec.deleted else None})


def _metadata(rec: Record, prefix: str) -> etree._Element:
    if rec.resource is None:  # section 2.5.1: a deleted record is its header alone
        return E("oai:record", _header(rec))
    body = dublin_core(rec.resource) if prefix == "oai_dc" else etree.fromstring(etree.tostring(rec.resource))
    return E("oai:record", _header(rec), E("oai:metadata", body))


def _token_encode(state: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode().rstrip("=")


def _token_decode(token: str) -> dict[str, object]:
    try:
        state = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise OaiError("badResumptionToken", "the resumption token is not one of ours") from None
    if not isinstance(state, dict) or not isinstance(state.get("o"), int):
        raise OaiError("badResumptionToken", "the resumption token is not one of ours")
    return state


def _digest(records: Sequence[Record]) -> str:
    h = hashlib.sha256()
    for r in records:
        h.update(f"{r.identifier}\n{_stamp(r.datestamp)}\n".encode())
    return h.hexdigest()[:16]


def _check_args(args: Mapping[str, Sequence[str]]) -> tuple[str, dict[str, str]]:
    """The verb and single-valued arguments, after the checks of section 3.1.1 and 3.6."""
    verbs = args.get("verb", [])
    if len(verbs) != 1 or verbs[0] not in _ARGS:
        raise OaiError("badVerb", "verb: missing, repeated or not an OAI-PMH verb"
                       if len(verbs) != 1 else f"verb: {verbs[0]!r} is not an OAI-PMH verb")
    verb = verbs[0]
    single: dict[str, str] = {}
    for name, values in args.items():
        if name == "verb":
            continue
        if len(values) != 1:
            raise OaiError("badArgument", f"{name}: given {len(values)} times")
        single[name] = values[0]
    required, optional = _ARGS[verb]
    if "resumptionToken" in single and verb in ("ListSets", "ListIdentifiers", "ListRecords"):
        if len(single) > 1:
            raise OaiError("badArgument", "resumptionToken is an exclusive argument")
        return verb, single
    unknown = set(single) - required - optional
    if unknown:
        raise OaiError("badArgument", f"{verb} takes no argument {', '.join(sorted(unknown))}")
    missing = required - set(single)
    if missing:
        raise OaiError("badArgument", f"{verb} needs {', '.join(sorted(missing))}")
    return verb, single


def _select(records: Sequence[Record], prefix: str, frm: str | None, until: str | None,
            set_spec: str | None) -> list[Record]:
    if prefix not in METADATA_FORMATS:
        raise OaiError("cannotDisseminateFormat", f"metadataPrefix: {prefix!r} is not offered (ivo_vor, oai_dc)")
    lo = hi = None
    if frm is not None:
        lo, g_lo = _parse_time("from", frm, end=False)
    if until is not None:
        hi, g_hi = _parse_time("until", until, end=True)
    if lo is not None and hi is not None:
        if g_lo != g_hi:
            raise OaiError("badArgument", "from and until must have the same granularity")
        if lo > hi:
            raise OaiError("badArgument", "from is later than until")
    chosen = [r for r in records
              if (lo is None or r.datestamp >= lo) and (hi is None or r.datestamp <= hi)
              and (set_spec is None or set_spec in r.sets)]
    if not chosen:
        raise OaiError("noRecordsMatch", "no record matches these from, until, set and metadataPrefix")
    return sorted(chosen, key=lambda r: r.identifier)


def _list(verb: str, single: dict[str, str], records: Sequence[Record],
          page: int) -> tuple[etree._Element, dict[str, str]]:
    """ListIdentifiers/ListRecords: one page, with a resumption token while the list goes on (3.5)."""
    if "resumptionToken" in single:
        state = _token_decode(single["resumptionToken"])
        if state.get("v") != verb:
            raise OaiError("badResumptionToken", "the resumption token belongs to another verb")
        prefix, frm, until, set_spec = (state.get(k) for k in ("p", "f", "u", "s"))
        try:
            chosen = _select(records, str(prefix), frm, until, set_spec)  # type: ignore[arg-type]
        except OaiError:
            raise OaiError("badResumptionToken", "the records changed since this token was issued") from None
        if state.get("h") != _digest(chosen) or not 0 < int(state["o"]) < len(chosen):  # type: ignore[call-overload]
            raise OaiError("badResumptionToken", "the records changed since this token was issued, or the token "
                           "is not valid: start the list again")
        offset = int(state["o"])  # type: ignore[call-overload]
        echo = {"resumptionToken": single["resumptionToken"]}
    else:
        prefix, frm, until, set_spec = (single.get(k) for k in ("metadataPrefix", "from", "until", "set"))
        chosen = _select(records, str(prefix), frm, until, set_spec)
        offset = 0
        echo = dict(single)
    part = chosen[offset:offset + page]
    items = [_header(r) if verb == "ListIdentifiers" else _metadata(r, str(prefix)) for r in part]
    token = None
    if offset > 0 or offset + page < len(chosen):
        nxt = offset + page
        value = _token_encode({"v": verb, "p": prefix, "f": frm, "u": until, "s": set_spec, "o": nxt,
                               "h": _digest(chosen)}) if nxt < len(chosen) else ""
        # section 3.5.1: the last page of an incomplete list carries an empty token
        token = E("oai:resumptionToken", value, attrib={"completeListSize": str(len(chosen)), "cursor": str(offset)})
    return E(f"oai:{verb}", *items, token), echo


def respond(args: Mapping[str, Sequence[str]], *, base_url: str, records: Sequence[Record], identify: IdentifyInfo,
            page_size: int, now: datetime | None = None) -> bytes:
    """The OAI-PMH response document to the request ``args`` at ``base_url``."""
    now = now or datetime.now(UTC)
    echo: dict[str, str] = {}
    verb = None
    try:
        verb, single = _check_args(args)
        echo = dict(single)
        if verb == "Identify":
            earliest = min((r.datestamp for r in records), default=now)
            body = E("oai:Identify",
                     E("oai:repositoryName", identify.name), E("oai:baseURL", base_url),
                     E("oai:protocolVersion", "2.0"), E("oai:adminEmail", identify.admin_email),
                     E("oai:earliestDatestamp", _stamp(earliest)), E("oai:deletedRecord", "transient"),
                     E("oai:granularity", "YYYY-MM-DDThh:mm:ssZ"),
                     # RI 1.1 section 3.1.1: Identify carries the registry's own record
                     E("oai:description", etree.fromstring(etree.tostring(identify.registry))))
        elif verb == "ListMetadataFormats":
            if "identifier" in single and not any(r.identifier == single["identifier"] for r in records):
                raise OaiError("idDoesNotExist", f"no record {single['identifier']!r}")
            body = E("oai:ListMetadataFormats", *[
                E("oai:metadataFormat", E("oai:metadataPrefix", p), E("oai:schema", schema),
                  E("oai:metadataNamespace", ns))
                for p, (schema, ns) in METADATA_FORMATS.items()])
        elif verb == "ListSets":
            if "resumptionToken" in single:
                raise OaiError("badResumptionToken", "the list of sets is never split")
            body = E("oai:ListSets",
                     *[E("oai:set", E("oai:setSpec", s), E("oai:setName", n)) for s, n in _SETS.items()])
        elif verb == "GetRecord":
            if single["metadataPrefix"] not in METADATA_FORMATS:
                raise OaiError("cannotDisseminateFormat",
                               f"metadataPrefix: {single['metadataPrefix']!r} is not offered")
            found = [r for r in records if r.identifier == single["identifier"]]
            if not found:
                raise OaiError("idDoesNotExist", f"no record {single['identifier']!r}")
            body = E("oai:GetRecord", _metadata(found[0], single["metadataPrefix"]))
        else:
            body, echo = _list(verb, single, records, page_size)
        request = E("oai:request", base_url, attrib={"verb": verb, **echo})
        parts = [body]
    except OaiError as err:
        # section 3.6: after badVerb or badArgument the request element carries no attributes
        plain = err.code in ("badVerb", "badArgument")
        request = E("oai:request", base_url, attrib=None if plain else {"verb": verb, **_valid_echo(echo)})
        parts = [E("oai:error", err.message, attrib={"code": err.code})]
    root = E("oai:OAI-PMH", E("oai:responseDate", _stamp(now)), request, *parts,
             attrib={qname("xsi", "schemaLocation"): f"{NS['oai']} http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd"},
             # prefixed, not the default namespace: the records inside hold unqualified elements
             # (VOResource), which libxml2 would not take out of a default namespace again
             nsmap={"oai": NS["oai"], "xsi": NS["xsi"]})
    return tostring(root)


def _valid_echo(echo: Mapping[str, str]) -> dict[str, str]:
    """The arguments that may be echoed in ``request`` after an error: values the schema accepts."""
    out = {}
    for name, value in echo.items():
        if name in ("from", "until") and not (_SECOND.fullmatch(value) or _DAY.fullmatch(value)):
            continue
        if name == "metadataPrefix" and not re.fullmatch(r"[A-Za-z0-9\-_.!~*'()]+", value):
            continue
        if name == "set" and not re.fullmatch(r"[A-Za-z0-9\-_.!~*'()]+(:[A-Za-z0-9\-_.!~*'()]+)*", value):
            continue
        out[name] = value
    return out
