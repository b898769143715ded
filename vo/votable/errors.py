"""The DALI error document: a VOTable whose results RESOURCE says ``QUERY_STATUS=ERROR``.

DALI 1.1 section 4.2 and TAP 1.1 section 2.9: the INFO sits in ``RESOURCE type="results"``,
its text is the message. Clients (pyvo ``_findstatus``, TOPCAT) read exactly this.
"""

from __future__ import annotations

from lxml import etree

from vo.xmlns import NS, E, tostring

__all__ = ["error_document"]


def error_document(message: str, *, extra_infos: dict[str, str] | None = None) -> bytes:
    """A VOTable 1.4 error document carrying ``message``."""
    infos = [E("INFO", message, attrib={"name": "QUERY_STATUS", "value": "ERROR"})]
    infos += [E("INFO", attrib={"name": k, "value": v}) for k, v in (extra_infos or {}).items()]
    root = E(
        "VOTABLE",
        E("RESOURCE", *infos, attrib={"type": "results"}),
        attrib={"version": "1.4"},
        nsmap={None: NS["vot"]},
    )
    # VOTABLE elements belong to the VOTable namespace.
    for el in root.iter():
        if isinstance(el.tag, str) and not el.tag.startswith("{"):
            el.tag = etree.QName(NS["vot"], el.tag).text
    return tostring(root)
