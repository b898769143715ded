"""vo.registry without a server: OAI-PMH date bounds, tokens over a list that changes, record dates."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from lxml import etree

from vo.registry.datestamps import DatestampBook, content_digest
from vo.registry.oai import IdentifyInfo, Record, respond
from vo.xmlns import E

OAI = {"o": "http://www.openarchives.org/OAI/2.0/"}


def _rec(ident: str, when: datetime) -> Record:
    return Record(ident, when, E("ri:Resource", E("title", ident), E("identifier", ident)))


RECORDS = [_rec(f"ivo://x/r{i}", datetime(2024, 5, i + 1, 12, 0, 0, tzinfo=UTC)) for i in range(5)]
INFO = IdentifyInfo("x", "a@b.org", E("ri:Resource"))


def _ask(records: list[Record], **args: str) -> etree._Element:
    return etree.fromstring(respond({k: [v] for k, v in args.items()}, base_url="http://x/oai", records=records,
                                    identify=INFO, page_size=2))


def _ids(root: etree._Element) -> list[str]:
    return root.xpath("//o:header/o:identifier/text()", namespaces=OAI)


def test_day_bounds_include_the_whole_day() -> None:
    root = _ask(RECORDS, verb="ListIdentifiers", metadataPrefix="ivo_vor",
                **{"from": "2024-05-02", "until": "2024-05-03"})
    assert _ids(root) == ["ivo://x/r1", "ivo://x/r2"]
    root = _ask(RECORDS, verb="ListIdentifiers", metadataPrefix="ivo_vor",
                **{"from": "2024-05-02T12:00:01Z", "until": "2024-05-03T12:00:00Z"})
    assert _ids(root) == ["ivo://x/r2"]


def test_a_token_over_a_changed_list_is_refused() -> None:
    first = _ask(RECORDS, verb="ListIdentifiers", metadataPrefix="ivo_vor")
    token = first.xpath("//o:resumptionToken/text()", namespaces=OAI)[0]
    assert _ids(_ask(RECORDS, verb="ListIdentifiers", resumptionToken=token)) == ["ivo://x/r2", "ivo://x/r3"]
    changed = [*RECORDS[:2], _rec("ivo://x/r2", datetime(2024, 6, 1, tzinfo=UTC)), *RECORDS[3:]]
    refused = _ask(changed, verb="ListIdentifiers", resumptionToken=token)
    assert refused.xpath("//o:error/@code", namespaces=OAI) == ["badResumptionToken"]


def test_record_dates_follow_content(tmp_path: Path) -> None:
    book = DatestampBook(tmp_path / "d.json")
    rec = E("ri:Resource", E("title", "a"), E("identifier", "ivo://x/a"), attrib={"updated": "2000-01-01T00:00:00Z"})
    t0, t1 = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC)
    assert book.stamp({"ivo://x/a": content_digest(rec)}, t0) == {"ivo://x/a": (t0, t0)}
    rec.set("updated", "2024-01-01T00:00:00Z")  # its own dates are not content
    assert book.stamp({"ivo://x/a": content_digest(rec)}, t1) == {"ivo://x/a": (t0, t0)}
    rec.find("title").text = "b"
    assert DatestampBook(tmp_path / "d.json").stamp({"ivo://x/a": content_digest(rec)}, t1) == {"ivo://x/a": (t0, t1)}


def test_records_that_go_away_are_deleted_records(tmp_path: Path) -> None:
    book = DatestampBook(tmp_path / "d.json")
    t0, t1, t2 = (datetime(2024, m, 1, tzinfo=UTC) for m in (1, 2, 3))
    book.stamp({"ivo://x/a": "1", "ivo://x/b": "2"}, t0)
    book.stamp({"ivo://x/a": "1"}, t1)
    assert book.deleted() == {"ivo://x/b": t1}
    book.stamp({"ivo://x/a": "1"}, t2)
    assert book.deleted() == {"ivo://x/b": t1}  # gone once, at t1
    records = [_rec("ivo://x/a", t0), *(Record(i, w, None) for i, w in book.deleted().items())]
    root = _ask(records, verb="ListRecords", metadataPrefix="oai_dc")
    assert root.xpath("//o:header[@status='deleted']/o:identifier/text()", namespaces=OAI) == ["ivo://x/b"]
    assert len(root.xpath("//o:record/o:metadata", namespaces=OAI)) == 1
    assert book.stamp({"ivo://x/a": "1", "ivo://x/b": "2"}, t2)["ivo://x/b"] == (t0, t2)  # back again
    assert book.deleted() == {}
