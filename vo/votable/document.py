"""The VOTable 1.4 document around streamed rows: head (up to the data), tail and status INFOs.

The whole skeleton is built once with the lxml builder of :mod:`vo.xmlns` and serialised
with a marker where the rows go; the text before the marker is the head and the text after
it the tail, so nothing here is hand-typed XML.

Layout (TAP 1.1 section 2.9, DALI 1.1 section 4.4.1)::

    VOTABLE / RESOURCE type="results"
        INFO name="QUERY_STATUS" value="OK"      (before the table)
        INFO ...                                  (caller's extra INFOs: QUERY, LANG, ...)
        TABLE / FIELD* / DATA / (BINARY2|BINARY)/STREAM encoding="base64" | TABLEDATA
        INFO name="QUERY_STATUS" value="OVERFLOW"|"ERROR"   (after the table, if any)

Clients such as pyvo trust the last QUERY_STATUS, so a trailing OVERFLOW or ERROR wins.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
from lxml import etree

from vo.votable.columns import ColumnPlan
from vo.xmlns import NS, E

__all__ = ["Base64Lines", "Serialization", "VOTableSkeleton", "status_info"]

Serialization = Literal["BINARY2", "BINARY", "TABLEDATA"]

_MARK = "@@vlkb-rows@@"

#: in-band NULLs of integer FIELDs in the BINARY serialisation (it has no null flags)
BINARY_NULLS = {"short": "-32768", "int": "-2147483648", "long": "-9223372036854775808"}


def _namespaced(root: etree._Element) -> etree._Element:
    for el in root.iter():
        if isinstance(el.tag, str) and not el.tag.startswith("{"):
            el.tag = etree.QName(NS["vot"], el.tag).text
    return root


def _field(plan: ColumnPlan, serialization: Serialization) -> etree._Element:
    col = plan.column
    values = None
    if serialization == "BINARY" and plan.kind in BINARY_NULLS:
        values = E("VALUES", attrib={"null": BINARY_NULLS[plan.kind]})
    return E(
        "FIELD",
        E("DESCRIPTION", col.description) if col.description else None,
        values,
        attrib={
            "name": col.name,
            "ID": plan.field_id,
            "datatype": plan.datatype,
            # one character: no arraysize (VOTable 1.3 Erratum 3 deprecates arraysize="1")
            "arraysize": None if plan.kind == "text" and plan.arraysize == "1" else plan.arraysize,
            "unit": col.unit or None,
            "ucd": col.ucd or None,
            "utype": col.utype or None,
            "xtype": col.xtype if plan.kind != "timestamp" else "timestamp",
        },
    )


def status_info(value: str, message: str | None = None) -> bytes:
    """``<INFO name="QUERY_STATUS" value=...>message</INFO>``, to close a results RESOURCE."""
    el = E("INFO", message, attrib={"name": "QUERY_STATUS", "value": value})
    return b"\n    " + etree.tostring(el, encoding="UTF-8") + b"\n"


class VOTableSkeleton:
    """Head and tail bytes of a results VOTable for ``plans`` in ``serialization``."""

    def __init__(
        self,
        plans: Sequence[ColumnPlan],
        serialization: Serialization,
        infos: Mapping[str, str] | None = None,
    ) -> None:
        infos = dict(infos or {})
        infos.pop("QUERY_STATUS", None)
        if serialization == "TABLEDATA":
            data = E("TABLEDATA", _MARK)
        else:
            data = E(serialization, E("STREAM", _MARK, attrib={"encoding": "base64"}))
        table = E("TABLE", *(_field(p, serialization) for p in plans), E("DATA", data))
        resource = E(
            "RESOURCE",
            E("INFO", attrib={"name": "QUERY_STATUS", "value": "OK"}),
            *(E("INFO", attrib={"name": k, "value": str(v)}) for k, v in infos.items()),
            table,
            attrib={"type": "results"},
        )
        root = _namespaced(E("VOTABLE", resource, attrib={"version": "1.4"}, nsmap={None: NS["vot"]}))
        text = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
        head, tail = text.split(_MARK.encode())
        self.head = head + b"\n"
        # the tail is "</STREAM></BINARY2></DATA></TABLE>" (or TABLEDATA), then "</RESOURCE></VOTABLE>"
        end_table = tail.index(b"</TABLE>") + len(b"</TABLE>")
        self._close_table = tail[:end_table]
        self._close_document = tail[end_table:].lstrip(b"\n")

    def tail(self, status: str = "OK", message: str | None = None) -> bytes:
        """Everything after the rows; a status other than OK adds a trailing QUERY_STATUS INFO."""
        trailer = status_info(status, message) if status != "OK" else b"\n"
        return self._close_table + trailer + self._close_document


class Base64Lines:
    """Incremental base64 in 76-character lines (MIME, RFC 2045) for a STREAM element."""

    _CHUNK = 57  # input bytes per output line

    def __init__(self) -> None:
        self._rest = b""

    @staticmethod
    def _lines(data: bytes | memoryview) -> bytes:
        text = np.frombuffer(binascii.b2a_base64(data, newline=False), np.uint8).reshape(-1, 76)
        lines = np.empty((text.shape[0], 77), np.uint8)
        lines[:, :76] = text
        lines[:, 76] = 10
        return lines.tobytes()

    def feed(self, data: bytes | memoryview) -> bytes:
        view = memoryview(data)
        out = b""
        if self._rest:
            need = self._CHUNK - len(self._rest)
            if len(view) < need:
                self._rest += bytes(view)
                return b""
            out = self._lines(self._rest + bytes(view[:need]))
            view = view[need:]
        whole = len(view) - len(view) % self._CHUNK
        self._rest = bytes(view[whole:])
        if whole:
            out = out + self._lines(view[:whole]) if out else self._lines(view[:whole])
        return out

    def flush(self) -> bytes:
        rest, self._rest = self._rest, b""
        return binascii.b2a_base64(rest) if rest else b""
