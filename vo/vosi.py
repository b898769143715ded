"""VOSI 1.1 documents: availability, capabilities (with TAPRegExt) and the tableset.

Built with :mod:`vo.xmlns` from plain values and the schema declarations, so they stay in
step with TAP_SCHEMA. No HTTP here: the router passes the base URL and the state.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from lxml import etree

from schemas import Column, SchemaDecl, Table
from vo.xmlns import NS, E, qname, tostring

__all__ = [
    "Capability",
    "SSO_TOKEN",
    "OutputFormat",
    "TapLimits",
    "UploadLimit",
    "availability",
    "capabilities",
    "service_capabilities",
    "tableset",
    "table_element",
]

STD_TAP = "ivo://ivoa.net/std/TAP"
STD_CAPABILITIES = "ivo://ivoa.net/std/VOSI#capabilities"
STD_AVAILABILITY = "ivo://ivoa.net/std/VOSI#availability"
STD_TABLES = "ivo://ivoa.net/std/VOSI#tables-1.1"
STD_EXAMPLES = "ivo://ivoa.net/std/DALI#examples"
STD_SIA2 = "ivo://ivoa.net/std/SIA#query-2.0"


def availability(available: bool, note: str, up_since: str | None = None) -> bytes:
    """The VOSI availability document (VOSI 1.1 section 3.3), with the literal ``vosi:`` prefix."""
    root = E(
        "vosi:availability",
        E("vosi:available", "true" if available else "false"),
        E("vosi:upSince", up_since) if up_since else None,
        E("vosi:note", note),
        nsmap={"vosi": NS["vosi"]},
    )
    return tostring(root)


@dataclass(frozen=True)
class OutputFormat:
    """A TAPRegExt outputFormat: MIME type, short aliases and its ivo-id when standard."""

    mime: str
    aliases: tuple[str, ...] = ()
    ivo_id: str | None = None


@dataclass(frozen=True)
class TapLimits:
    """Limits declared in TAPRegExt (section 2.6-2.8)."""

    retention_default: int
    retention_hard: int
    execution_default: int
    execution_hard: int
    maxrec_default: int
    maxrec_hard: int


@dataclass(frozen=True)
class UploadLimit:
    """TAPRegExt ``uploadLimit`` (section 2.8): rows and bytes of all tables of one request.

    Both are hard limits, but a DataLimits element carries one value of each kind; the row
    limit goes in ``default`` and the byte limit, what a client can check before sending,
    in ``hard``.
    """

    rows: int
    bytes: int


@dataclass(frozen=True)
class LanguageFeature:
    """One TAPRegExt language feature: its type URI, form and description."""

    type: str
    form: str
    description: str | None = None


@dataclass(frozen=True)
class Capability:
    """A plain VOSI capability: standardID and the path of its interface below the base URL."""

    standard_id: str
    path: str
    xsi_type: str = "vs:ParamHTTP"
    role: str = "std"
    extra: dict[str, str] = field(default_factory=dict)
    #: the interface's version attribute (e.g. "2.0" for SIA 2.0), when the standard asks for it
    version: str | None = None


#: SSO 2.0 section 4: the standardID of OAuth 2 bearer tokens (``Authorization: Bearer``)
SSO_TOKEN = "ivo://ivoa.net/sso#token"


def _interface(
    base: str, path: str, xsi_type: str = "vs:ParamHTTP", role: str | None = "std", version: str | None = None,
    security: Sequence[str | None] = (),
) -> etree._Element:
    """``security``: the interface's security methods (VOResource 1.1 section 3.3.2); None is anonymous."""
    return E(
        "interface",
        E("accessURL", base + path, attrib={"use": "base" if xsi_type == "vs:ParamHTTP" else "full"}),
        *[E("securityMethod", attrib={"standardID": sid}) for sid in security],
        attrib={qname("xsi", "type"): xsi_type, "role": role, "version": version},
    )


def capabilities(
    base: str,
    tap_path: str,
    *,
    languages: Sequence[tuple[str, Sequence[str], Sequence[LanguageFeature]]],
    output_formats: Iterable[OutputFormat],
    limits: TapLimits,
    upload_methods: Iterable[str] = (),
    upload_limit: UploadLimit | None = None,
    extra: Iterable[Capability] = (),
    security: Sequence[str | None] = (),
) -> bytes:
    """The VOSI capabilities document of the TAP service at ``base + tap_path``.

    ``security`` lists the security methods of the query interface (e.g. ``(None, SSO_TOKEN)``:
    anonymous or with a bearer token); the VOSI endpoints themselves are always anonymous.

    ``languages`` holds (name, versions, features); each version is published with the
    ivo-id ``ivo://ivoa.net/std/ADQL#v<version>`` (TAPRegExt section 2.3).
    """
    tap = base + tap_path
    lang_els = []
    for name, versions, features in languages:
        by_type: dict[str, list[LanguageFeature]] = {}
        for f in features:
            by_type.setdefault(f.type, []).append(f)
        lang_els.append(
            E(
                "language",
                E("name", name),
                *[E("version", v, attrib={"ivo-id": f"ivo://ivoa.net/std/{name}#v{v}"}) for v in versions],
                E("description", f"{name} as specified by the IVOA, translated to PostgreSQL + pgSphere"),
                *[
                    E("languageFeatures",
                      *[E("feature", E("form", f.form), E("description", f.description) if f.description else None)
                        for f in fs],
                      attrib={"type": t})
                    for t, fs in by_type.items()
                ],
            )
        )
    fmt_els = [
        E("outputFormat", E("mime", f.mime), *[E("alias", a) for a in f.aliases], attrib={"ivo-id": f.ivo_id})
        for f in output_formats
    ]
    tap_cap = E(
        "capability",
        # TAP 1.1 section 2.4: the version attribute tells 1.1 services from 1.0 ones.
        _interface(tap, "", "vs:ParamHTTP", "std", version="1.1", security=security),
        *lang_els,
        *fmt_els,
        *[E("uploadMethod", attrib={"ivo-id": m}) for m in upload_methods],
        E("retentionPeriod", E("default", str(limits.retention_default)), E("hard", str(limits.retention_hard))),
        E("executionDuration", E("default", str(limits.execution_default)), E("hard", str(limits.execution_hard))),
        E(
            "outputLimit",
            E("default", str(limits.maxrec_default), attrib={"unit": "row"}),
            E("hard", str(limits.maxrec_hard), attrib={"unit": "row"}),
        ),
        E(
            "uploadLimit",
            E("default", str(upload_limit.rows), attrib={"unit": "row"}),
            E("hard", str(upload_limit.bytes), attrib={"unit": "byte"}),
        ) if upload_limit is not None else None,
        attrib={"standardID": STD_TAP, qname("xsi", "type"): "tr:TableAccess"},
    )
    caps = [
        tap_cap,
        E("capability", _interface(tap, "/capabilities"), attrib={"standardID": STD_CAPABILITIES}),
        E("capability", _interface(tap, "/availability"), attrib={"standardID": STD_AVAILABILITY}),
        E("capability", _interface(tap, "/tables"), attrib={"standardID": STD_TABLES}),
    ]
    for cap in extra:
        iface = _interface(base, cap.path, cap.xsi_type, cap.role)
        caps.append(E("capability", iface, attrib={"standardID": cap.standard_id}))
    root = E(
        "vosicap:capabilities",
        *caps,
        nsmap={k: NS[k] for k in ("vosicap", "vr", "vs", "tr", "xsi")},
    )
    return tostring(root)


def service_capabilities(base: str, root: str, caps: Iterable[Capability],
                         security: Sequence[str | None] = ()) -> bytes:
    """The VOSI capabilities document of a plain service (SIA, DataLink, SODA) under ``base + root``:
    ``caps`` (with the security methods ``security``), then its own VOSI capabilities and
    availability endpoints (anonymous)."""
    own = [
        Capability(STD_CAPABILITIES, f"{root}/capabilities"),
        Capability(STD_AVAILABILITY, f"{root}/availability"),
    ]
    root_el = E(
        "vosicap:capabilities",
        *[
            E("capability", _interface(base, c.path, c.xsi_type, c.role, version=c.version,
                                       security=security if c not in own else ()),
              attrib={"standardID": c.standard_id})
            for c in [*caps, *own]
        ],
        nsmap={k: NS[k] for k in ("vosicap", "vr", "vs", "xsi")},
    )
    return tostring(root_el)


def _column_element(col: Column, indexed: bool) -> etree._Element:
    info = col.info
    flags = [f for f, on in (("indexed", indexed), ("primary", col.principal), ("nullable", col.nullable)) if on]
    return E(
        "column",
        E("name", col.adql_name),
        E("description", col.description),
        E("unit", col.unit) if col.unit else None,
        E("ucd", col.ucd) if col.ucd else None,
        E("utype", col.utype) if col.utype else None,
        E(
            "dataType",
            info.datatype,
            attrib={
                qname("xsi", "type"): "vs:VOTableType",
                "arraysize": col.votable_arraysize,
                "extendedType": info.xtype,
            },
        ),
        *[E("flag", f) for f in flags],
        attrib={"std": "true"} if col.std else None,
    )


def table_element(table: Table, *, detail: bool = True, root: bool = False) -> etree._Element:
    """A VODataService ``table`` (a root ``vosi:table`` when ``root``)."""
    indexed = table.indexed_columns()
    children: list[etree._Element | None] = [
        E("name", table.qualified_name),
        E("description", table.description),
        E("utype", table.utype) if table.utype else None,
    ]
    if detail:
        children += [_column_element(c, c.name.lower() in indexed) for c in table.published_columns]
        for fk in table.foreign_keys:
            children.append(
                E(
                    "foreignKey",
                    E("targetTable", fk.target),
                    *[E("fkColumn", E("fromColumn", a), E("targetColumn", b)) for a, b in fk.columns],
                    E("description", fk.description) if fk.description else None,
                )
            )
    if root:
        return E("vosi_tables:table", *children, attrib={"type": table.type},
                 nsmap={"vosi": NS["vosi_tables"], "vs": NS["vs"], "xsi": NS["xsi"]})
    return E("table", *children, attrib={"type": table.type})


def tableset(decls: Sequence[SchemaDecl], *, detail: bool = True) -> bytes:
    """The VOSI tableset (VOSI 1.1 section 3.4); ``detail=False`` omits columns and keys."""
    root = E(
        "vosi_tables:tableset",
        *[
            E(
                "schema",
                E("name", d.name),
                E("description", d.description),
                E("utype", d.utype) if d.utype else None,
                *[table_element(t, detail=detail) for t in d.tables],
            )
            for d in decls
        ],
        nsmap={"vosi": NS["vosi_tables"], "vs": NS["vs"], "xsi": NS["xsi"]},
    )
    return tostring(root)


def single_table(table: Table) -> bytes:
    """The VOSI document for one table (``/tables/{name}``)."""
    return tostring(table_element(table, detail=True, root=True))
