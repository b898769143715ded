"""The one parameter rule (vo/dali.py) over every protocol's parameters, as a table.

Each row is one parameter of one protocol's reader: a request it completes (``base``), two valid
values, whether it repeats and which error a repeat of a single-valued one gives. Every row goes
through the same cases, each with the one expected behaviour: a repeated single-valued parameter is
an error naming it (even the same value twice); a repeatable one keeps its values; a blank value is
the same as no value; a NUL is a UsageError naming it; the name's case does not matter; surrounding
whitespace does not matter; an unknown parameter changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from vo.dali import DaliParams
from vo.datalink import LinksQuery
from vo.errors import MultiValuedParamNotSupported, UsageError
from vo.sia import SiaQuery
from vo.soda import SodaJobParams, SodaParams
from vo.tap import TapQuery
from vo.uws.service import UwsParams
from vo.vialactea.legacy import LegacyQuery

Raw = dict[str, list[str]]


@dataclass(frozen=True)
class Row:
    protocol: str
    parse: Callable[[Raw], object]
    name: str
    values: tuple[str, str]
    base: Raw = field(default_factory=dict)
    repeatable: bool = False
    repeat_error: type[UsageError] = UsageError
    #: the protocol's own error for a repeatable parameter given twice the same value, if it has one
    twice: str | None = None
    #: the value is kept as sent, surrounding whitespace included (TAP's QUERY)
    exact: bool = False

    def raw(self, values: list[str] | None, name: str | None = None) -> Raw:
        """``base`` with this parameter given ``values`` (None: left out), under ``name``."""
        out = {k: v for k, v in self.base.items() if k != self.name}
        if values is not None:
            out[name or self.name] = values
        return out


def tap(raw: Raw) -> object:
    return TapQuery.from_params(raw, maxrec_default=100, maxrec_limit=1000)


def sia(raw: Raw) -> object:
    return SiaQuery.from_params(raw, maxrec_default=100, maxrec_limit=1000)


def uws_list(raw: Raw) -> object:
    p = UwsParams(raw)
    return p.phases(), p.after(), p.last()


def uws_create(raw: Raw) -> object:
    p = UwsParams(raw)
    return p.command("RUN"), p.single("RUNID")


def uws_post(raw: Raw) -> object:
    p = UwsParams(raw)
    return p.action(), p.command("RUN", "ABORT")


def reader(method: str, *args: object) -> Callable[[Raw], object]:
    """A router-level read through :class:`DaliParams` (legacy pubdid, MOC, VOSI, mcutout)."""
    return lambda raw: getattr(DaliParams(raw), method)(*args)


TAP_BASE = {"LANG": ["ADQL"], "QUERY": ["SELECT 1"]}
DID = "ivo://vlkb.test/vlkb?a/b.fits"
SODA = {"ID": [DID]}
LEGACY = {"l": ["10"], "b": ["0"], "r": ["0.1"]}
MULTI = MultiValuedParamNotSupported

ROWS = [
    # TAP 1.1 section 2.3 (sync, and async when the job runs)
    Row("TAP", tap, "REQUEST", ("doQuery", "doquery"), TAP_BASE),
    Row("TAP", tap, "LANG", ("ADQL", "ADQL-2.1"), TAP_BASE),
    Row("TAP", tap, "QUERY", ("SELECT 1", "SELECT 2"), TAP_BASE, exact=True),
    Row("TAP", tap, "VERSION", ("1.0", "1.1"), TAP_BASE),
    Row("TAP", tap, "MAXREC", ("5", "0"), TAP_BASE),
    Row("TAP", tap, "RESPONSEFORMAT", ("csv", "tsv"), TAP_BASE),
    Row("TAP", tap, "FORMAT", ("csv", "text/tab-separated-values"), TAP_BASE),
    Row("TAP", tap, "RUNID", ("a", "b"), TAP_BASE),
    Row("TAP", tap, "UPLOAD", ("t1,param:p1", "t2,param:p2"), TAP_BASE, repeatable=True,
        twice="UPLOAD: table t1 is uploaded twice"),  # TAP 1.1 section 2.5.1: table names are unique
    # SIA 2.0 section 2: every constraint repeats (OR), the DALI parameters do not
    *(Row("SIA", sia, name, values, repeatable=True) for name, values in [
        ("POS", ("CIRCLE 1 2 0.5", "RANGE 0 1 0 1")), ("BAND", ("1e-6 2e-6", "3e-6")), ("TIME", ("1 2", "3 4")),
        ("POL", ("I", "q")), ("FOV", ("0 1", "1 2")), ("SPATRES", ("0 1", "1 2")), ("EXPTIME", ("0 1", "1 2")),
        ("TIMERES", ("0 1", "1 2")), ("SPECRP", ("0 1", "1 2")), ("ID", ("a", "b")), ("COLLECTION", ("A", "B")),
        ("FACILITY", ("A", "B")), ("INSTRUMENT", ("A", "B")), ("DPTYPE", ("image", "cube")), ("CALIB", ("1", "2")),
        ("TARGET", ("A", "B")), ("FORMAT", ("image/fits", "text/plain")),
    ]),
    Row("SIA", sia, "POSSYS", ("ICRS", "galactic")),
    Row("SIA", sia, "MAXREC", ("5", "6")),
    Row("SIA", sia, "RESPONSEFORMAT", ("csv", "votable")),
    # SODA 1.0 section 3 (sync): one of each, MultiValuedParamNotSupported otherwise; POL repeats
    *(Row("SODA sync", SodaParams.from_params, name, values, SODA, repeat_error=MULTI) for name, values in [
        ("ID", (DID, "ivo://vlkb.test/vlkb?c/d.fits")), ("POS", ("CIRCLE 1 1 0.1", "RANGE 0 1 0 1")),
        ("CIRCLE", ("1 1 0.1", "2 2 0.1")), ("POLYGON", ("0 0 1 0 0 1", "0 0 2 0 0 2")),
        ("POSSYS", ("ICRS", "GALACTIC")), ("BAND", ("1e-6 2e-6", "3e-6 4e-6")), ("TIME", ("1 2", "3 4")),
        ("VELO", ("-5 5", "0 10")), ("PIXELS", ("[1:2]", "[2:3] [*]")),
    ]),
    Row("SODA sync", SodaParams.from_params, "POL", ("I", "Q U"), SODA, repeatable=True),
    # SODA async and /soda/merge: ID and the regions repeat (one cut per pair)
    *(Row("SODA async", SodaJobParams.from_params, name, values, SODA, repeatable=True) for name, values in [
        ("ID", (DID, "ivo://vlkb.test/vlkb?c/d.fits")), ("POS", ("CIRCLE 1 1 0.1", "RANGE 0 1 0 1")),
        ("CIRCLE", ("1 1 0.1", "2 2 0.1")), ("POL", ("I", "Q")),
    ]),
    Row("SODA async", SodaJobParams.from_params, "MERGE", ("false", "0"), SODA, repeat_error=MULTI),
    Row("SODA async", SodaJobParams.from_params, "VELO", ("-5 5", "0 10"), SODA, repeat_error=MULTI),
    # DataLink 1.1 section 3.1
    Row("DataLink", LinksQuery.from_params, "ID", (DID, "ivo://vlkb.test/vlkb?c/d.fits"), SODA, repeatable=True),
    Row("DataLink", LinksQuery.from_params, "RESPONSEFORMAT", ("votable", "application/x-votable+xml"), SODA),
    # UWS 1.1 section 2.2: the job list's filters, WAIT, creation, the job's POSTs
    Row("UWS list", uws_list, "PHASE", ("EXECUTING", "queued"), repeatable=True),
    Row("UWS list", uws_list, "AFTER", ("2020-01-01T00:00:00Z", "2021-06-01")),
    Row("UWS list", uws_list, "LAST", ("5", "0")),
    Row("UWS job", lambda raw: UwsParams(raw).wait(), "WAIT", ("1", "-1")),
    Row("UWS job", lambda raw: UwsParams(raw).wait(), "PHASE", ("QUEUED", "executing"), {"WAIT": ["0"]}),
    Row("UWS create", uws_create, "PHASE", ("RUN", "run")),
    Row("UWS create", uws_create, "RUNID", ("a", "b")),
    Row("UWS post", uws_post, "ACTION", ("DELETE", "delete")),
    Row("UWS post", uws_post, "PHASE", ("RUN", "ABORT")),
    Row("UWS", lambda raw: UwsParams(raw).execution_duration(), "EXECUTIONDURATION", ("10", "0")),
    Row("UWS", lambda raw: UwsParams(raw).destruction(), "DESTRUCTION", ("2099-01-01T00:00:00Z", "2098-01-01")),
    # the legacy ViaLactea API (lower-case names) and the reads its router makes
    *(Row("legacy", LegacyQuery.from_params, name, values, LEGACY) for name, values in [
        ("l", ("10", "11")), ("b", ("0", "1")), ("r", ("0.1", "0.2")), ("surveyname", ("A", "B")),
        ("species", ("A", "B")), ("transition", ("A", "B")),
    ]),
    Row("legacy", LegacyQuery.from_params, "vl", ("-5", "0"), {**LEGACY, "vu": ["10"]}),
    Row("legacy", reader("required", "pubdid", "give one"), "pubdid", (DID, "ivo://vlkb.test/vlkb?c/d.fits")),
    Row("legacy", reader("flag", "nullvals"), "nullvals", ("true", "0")),
    # the MOC service, VOSI tables and the ViaLactea multi-cutout field
    Row("MOC", reader("single", "FORMAT"), "FORMAT", ("fits", "json")),
    Row("MOC", reader("single", "ID"), "ID", (DID, "b")),
    Row("VOSI", reader("single", "DETAIL"), "DETAIL", ("min", "max")),
    Row("mcutout", reader("single", "MCUTOUT"), "MCUTOUT", ("[]", "[{}]")),
]
IDS = [f"{r.protocol} {r.name}" for r in ROWS]


def outcome(parse: Callable[[Raw], object], raw: Raw) -> tuple:
    """What a reader makes of ``raw``: its result, or the class and text of its error."""
    try:
        return ("ok", parse(raw))
    except UsageError as exc:
        return ("error", type(exc), exc.message)


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_repeated(row: Row) -> None:
    a, b = row.values
    for values in ([a, b], [a, a]):
        if row.repeatable:
            got = outcome(row.parse, row.raw(values))
            if values == [a, a] and row.twice is not None:
                assert got == ("error", UsageError, row.twice)
                continue
            assert got[0] == "ok", got
            if values == [a, b]:
                assert got != outcome(row.parse, row.raw([a])), "a repeatable parameter keeps every value"
        else:
            with pytest.raises(row.repeat_error) as err:
                row.parse(row.raw(values))
            assert type(err.value) is row.repeat_error
            assert err.value.message.lower().startswith(f"{row.name.lower()}: "), err.value.message


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_each_value_alone_is_read(row: Row) -> None:
    for value in row.values:
        assert outcome(row.parse, row.raw([value]))[0] == "ok"


@pytest.mark.parametrize("blank", ["", "   ", "\t"])
@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_blank_is_absent(row: Row, blank: str) -> None:
    absent = outcome(row.parse, row.raw(None))
    assert outcome(row.parse, row.raw([blank])) == absent
    assert outcome(row.parse, row.raw([blank, row.values[0], blank])) == outcome(row.parse, row.raw([row.values[0]]))


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_nul_is_an_error_naming_the_parameter(row: Row) -> None:
    """Refused here too, for values that do not come through app.params (stored job parameters)."""
    value = row.values[0]
    with pytest.raises(UsageError) as err:
        row.parse(row.raw([value[:1] + "\x00" + value[1:]]))
    assert err.value.message == f"{row.name}: the value contains a NUL character"


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_name_case_and_surrounding_whitespace_do_not_matter(row: Row) -> None:
    value = row.values[0]
    expected = outcome(row.parse, row.raw([value]))
    for name in (row.name.lower(), row.name.upper(), row.name.swapcase(), row.name.capitalize()):
        assert outcome(row.parse, row.raw([value], name)) == expected, name
    padded = outcome(row.parse, row.raw([f"  {value}\n"]))
    assert (padded != expected) if row.exact else (padded == expected)


def test_query_is_kept_as_sent() -> None:
    """TAP's QUERY keeps its whitespace: VLKB_ADQL_MAX_LENGTH bounds what was sent."""
    assert tap({**TAP_BASE, "QUERY": [" SELECT 1\n"]}).query == " SELECT 1\n"
    with pytest.raises(UsageError, match="^QUERY: 12 characters"):
        TapQuery.from_params({**TAP_BASE, "QUERY": ["SELECT 1    "]}, maxrec_default=1, maxrec_limit=1,
                             max_query_length=10)


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_unknown_parameters_change_nothing(row: Row) -> None:
    raw = row.raw([row.values[0]])
    assert outcome(row.parse, {**raw, "XYZZY": ["1"], "NUL_FREE": [""]}) == outcome(row.parse, raw)


@pytest.mark.parametrize(("parse", "raw", "name"), [
    (uws_list, {"PHASE": ["NOPE"]}, "PHASE"),
    (uws_list, {"LAST": ["-1"]}, "LAST"),
    (uws_list, {"AFTER": ["yesterday"]}, "AFTER"),
    (lambda raw: UwsParams(raw).execution_duration(), {"EXECUTIONDURATION": ["ten"]}, "EXECUTIONDURATION"),
    (lambda raw: UwsParams(raw).execution_duration(), {}, "EXECUTIONDURATION"),
    (lambda raw: UwsParams(raw).destruction(), {}, "DESTRUCTION"),
    (lambda raw: UwsParams(raw).wait(), {"WAIT": ["NaN"]}, "WAIT"),
    (lambda raw: UwsParams(raw).wait(), {"WAIT": ["1"], "PHASE": ["NOPE"]}, "PHASE"),
    (uws_create, {"PHASE": ["ABORT"]}, "PHASE"),
    (uws_post, {"ACTION": ["UPDATE"]}, "ACTION"),
    (uws_post, {"PHASE": ["SUSPEND"]}, "PHASE"),
    (tap, {**TAP_BASE, "MAXREC": ["-1"]}, "MAXREC"),
    (tap, {**TAP_BASE, "MAXREC": ["1.5"]}, "MAXREC"),
    (tap, {**TAP_BASE, "RESPONSEFORMAT": ["image/gif"]}, "RESPONSEFORMAT"),
    (sia, {"POSSYS": ["FK5"]}, "POSSYS"),
    (SodaJobParams.from_params, {**SODA, "MERGE": ["maybe"]}, "MERGE"),
    (reader("flag", "nullvals"), {"nullvals": ["sometimes"]}, "nullvals"),
])
def test_bad_values_are_errors_naming_the_parameter(parse, raw: Raw, name: str) -> None:
    with pytest.raises(UsageError, match=f"^{name}: "):
        parse(raw)


def test_keywords_ignore_case_values_do_not() -> None:
    """Enumerated keywords (POSSYS, booleans, phases, format names) ignore case; other values are kept as sent."""
    assert sia({"POSSYS": ["galactic"]}).possys == "GALACTIC"
    assert DaliParams({"F": ["TRUE"]}).flag("F") and not DaliParams({"F": ["No"]}).flag("F")
    assert uws_list({"PHASE": ["executing"]})[0] == ["EXECUTING"]
    assert tap({**TAP_BASE, "RESPONSEFORMAT": ["CSV"]}).format.name == "csv"
    assert sia({"COLLECTION": ["Hi-GAL"]}).collections == ("Hi-GAL",)
    assert LegacyQuery.from_params({**LEGACY, "species": ["13CO"]}).species == "13CO"


def test_maxrec_default_and_limit() -> None:
    assert DaliParams({}).maxrec(100, 1000) == 100
    assert DaliParams({}).maxrec(100, 10) == 10
    assert DaliParams({"MAXREC": ["0"]}).maxrec(100, 1000) == 0
    assert DaliParams({"maxrec": ["5000"]}).maxrec(100, 1000) == 1000
