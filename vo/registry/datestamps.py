"""Creation and modification times of registry records, kept in a small JSON file.

An OAI-PMH datestamp must change when a record changes (OAI-PMH 2.0 section 2.7.1), or
incremental harvesters never see the change. What goes into a record comes from settings, the
published schemas and the ingested data, none of which keeps a history; so the book remembers,
per identifier, a digest of the record's content with the time it was first and last seen to
change. A restart with unchanged content keeps the dates, and a record that is no longer
published is remembered as deleted (OAI-PMH ``deletedRecord`` ``transient``: the book is a
file under VLKB_HOME, not a promise kept forever). No HTTP and no SQL here.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path

from lxml import etree

__all__ = ["DELETED", "DatestampBook", "content_digest"]

#: the digest of a record that is no longer published
DELETED = "deleted"


def content_digest(resource: etree._Element) -> str:
    """A digest of a record's content without its own dates (canonical XML, C14N 2.0)."""
    copy = etree.fromstring(etree.tostring(resource))
    for attr in ("created", "updated"):
        copy.attrib.pop(attr, None)
    for date in copy.findall("curation/date"):
        date.getparent().remove(date)
    return hashlib.sha256(etree.tostring(copy, method="c14n2")).hexdigest()[:32]


class DatestampBook:
    """``identifier -> (digest, created, updated)`` in the JSON file ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _load(self) -> dict[str, list[str]]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def stamp(self, digests: dict[str, str], now: datetime | None = None) -> dict[str, tuple[datetime, datetime]]:
        """(created, updated) of every identifier in ``digests`` (identifier -> content digest):
        unchanged content keeps its dates, new or changed content is stamped ``now``. An identifier
        of the book missing from ``digests`` is marked deleted at ``now`` (see :meth:`deleted`)."""
        now = (now or datetime.now(UTC)).replace(microsecond=0)
        with self._lock:
            book = self._load()
            changed = False
            for ident, kept in book.items():
                if ident not in digests and len(kept) == 3 and kept[0] != DELETED:
                    book[ident] = [DELETED, kept[1], now.isoformat()]
                    changed = True
            out: dict[str, tuple[datetime, datetime]] = {}
            for ident, digest in digests.items():
                entry = book.get(ident)
                if entry is None or len(entry) != 3:
                    entry = [digest, now.isoformat(), now.isoformat()]
                    changed = True
                elif entry[0] != digest:
                    entry = [digest, entry[1], now.isoformat()]
                    changed = True
                book[ident] = entry
                out[ident] = (datetime.fromisoformat(entry[1]), datetime.fromisoformat(entry[2]))
            if changed:
                self._save(book)
        return out

    def deleted(self) -> dict[str, datetime]:
        """Identifiers published once and gone since (a survey made restricted, a changed
        authority), with the time they went away: OAI-PMH deleted records."""
        return {ident: datetime.fromisoformat(entry[2]) for ident, entry in self._load().items()
                if len(entry) == 3 and entry[0] == DELETED}

    def _save(self, book: dict[str, list[str]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".datestamps-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(book, out, indent=1, sort_keys=True)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
