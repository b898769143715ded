"""XML namespaces and the one element builder used for every XML document vlkb writes.

VOSI, UWS, VOTable headers and DALI examples are built with lxml, never hand-typed text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from lxml import etree

__all__ = ["NS", "E", "qname", "tostring", "xml_safe"]

# Characters XML 1.0 cannot carry at all (section 2.2), even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def xml_safe(text: str) -> str:
    """``text`` with characters XML cannot carry shown as ``\\xNN`` escapes (user input echoed in
    error messages and INFOs may hold anything)."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)

NS = {
    "vosi": "http://www.ivoa.net/xml/VOSIAvailability/v1.0",
    "vosicap": "http://www.ivoa.net/xml/VOSICapabilities/v1.0",
    "vosi_tables": "http://www.ivoa.net/xml/VOSITables/v1.0",
    "vr": "http://www.ivoa.net/xml/VOResource/v1.0",
    "vs": "http://www.ivoa.net/xml/VODataService/v1.1",
    "tr": "http://www.ivoa.net/xml/TAPRegExt/v1.0",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
    "uws": "http://www.ivoa.net/xml/UWS/v1.0",
    "xlink": "http://www.w3.org/1999/xlink",
    "vot": "http://www.ivoa.net/xml/VOTable/v1.3",
    "ri": "http://www.ivoa.net/xml/RegistryInterface/v1.0",
    "vg": "http://www.ivoa.net/xml/VORegistry/v1.0",
    "sia": "http://www.ivoa.net/xml/SIA/v1.1",
    "oai": "http://www.openarchives.org/OAI/2.0/",
    "oai_dc": "http://www.openarchives.org/OAI/2.0/oai_dc/",
    "dc": "http://purl.org/dc/elements/1.1/",
}


# Prefix -> namespace URI; the key None is lxml's default namespace. Spelled as a union because a
# Mapping's key type is invariant: a ``dict[str, str]`` or ``{None: uri}`` is not a
# ``Mapping[str | None, str]``.
NsMap = Mapping[str, str] | Mapping[None, str] | Mapping[str | None, str]


def qname(prefix: str, local: str) -> str:
    """Clark notation ``{uri}local`` for a prefixed name."""
    return f"{{{NS[prefix]}}}{local}"


def E(tag: str, *children: etree._Element | str | None, attrib: Mapping[str, str | None] | None = None,
      nsmap: NsMap | None = None) -> etree._Element:
    """Build an element; ``tag`` may be ``prefix:local``. None children and attributes are skipped."""
    if ":" in tag and not tag.startswith("{"):
        prefix, local = tag.split(":", 1)
        tag = qname(prefix, local)
    el = etree.Element(tag, nsmap=nsmap)
    for key, value in (attrib or {}).items():
        if value is None:
            continue
        if ":" in key and not key.startswith("{"):
            p, loc = key.split(":", 1)
            key = qname(p, loc)
        el.set(key, xml_safe(value))
    for child in children:
        if child is None:
            continue
        if isinstance(child, str):
            child = xml_safe(child)
            if len(el):
                el[-1].tail = (el[-1].tail or "") + child
            else:
                el.text = (el.text or "") + child
        else:
            el.append(child)
    return el


def tostring(root: etree._Element, *, pretty: bool = True) -> bytes:
    """Serialise with an XML declaration, UTF-8."""
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=pretty)
