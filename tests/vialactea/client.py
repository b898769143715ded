"""The ViaLactea client's parsing rules, re-stated from the contract (shared/vialactea-client.md).

Each function reads a response the way the client's C++ code does, with no VO library, so a
test fails where the client would: FIELD names matched to TR/TD positions, ``obs_title`` split
on ``|``, wavelengths filed into the client's five groups, ``s_region_galactic`` tokens 2 to 9,
TSV rows split on any whitespace, ``vosi:available`` found by its qualified name.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote
from xml.dom import minidom
from xml.etree import ElementTree

__all__ = [
    "VOTABLE_NS", "SearchRow", "available", "best_cutout", "client_url", "em_index", "parse_search",
    "split_catalogue", "split_tabs",
]

VOTABLE_NS = "{http://www.ivoa.net/xml/VOTable/v1.3}"


@dataclass(frozen=True)
class SearchRow:
    """One SIA row as ``VLKBInventoryTree::parseVOTable`` keeps it."""

    values: dict[str, str]

    @property
    def overlap_sky(self) -> int:
        return int(self.values["overlapSky"])

    @property
    def species_transition(self) -> tuple[str, str]:
        species, transition = self.values["obs_title"].split("|")
        return species.strip(), transition.strip()

    @property
    def corners(self) -> list[tuple[float, float]]:
        """Tokens 2-9 of ``s_region_galactic``: four (l, b) corners."""
        tokens = self.values["s_region_galactic"].split(" ")
        numbers = [float(t) for t in tokens[2:10]]
        return list(zip(numbers[0::2], numbers[1::2], strict=True))


def parse_search(body: bytes) -> list[SearchRow]:
    """Rows of an SIA answer: FIELD names in order, matched to the TD positions of each TR."""
    root = ElementTree.fromstring(body)
    table = root.find(f".//{VOTABLE_NS}TABLE")
    assert table is not None, body[:500]
    names = [f.get("name") for f in table.findall(f"{VOTABLE_NS}FIELD")]
    data = table.find(f"{VOTABLE_NS}DATA/{VOTABLE_NS}TABLEDATA")
    assert data is not None, "the client reads TABLEDATA only"
    rows = []
    for tr in data.findall(f"{VOTABLE_NS}TR"):
        tds = [td.text or "" for td in tr.findall(f"{VOTABLE_NS}TD")]
        assert len(tds) == len(names)
        rows.append(SearchRow(dict(zip(names, tds, strict=True))))
    return rows


def em_index(em_min: str, em_max: str) -> int:
    """The client's spectral group of a row (metres): 0 visible ... 4 radio, -1 (a crash) when unreadable."""
    try:
        wavelength = (float(em_min) + float(em_max)) / 2
    except ValueError:
        return -1
    if not wavelength > 0:
        return -1
    for index, limit in enumerate((1e-6, 25e-6, 500e-6, 5e-3)):
        if wavelength < limit if index == 0 else wavelength <= limit:
            return index
    return 4


def best_cutout(rows: list[SearchRow]) -> dict[str, SearchRow]:
    """``SourceCutouts::getBestCutout``: per survey, a row of full overlap (3) if any, else the lowest code."""
    best: dict[str, SearchRow] = {}
    for row in rows:
        if row.overlap_sky == 0:  # merge rows are skipped (parseSearchResults)
            continue
        key = row.values["obs_collection"] + "|" + row.values["obs_title"]
        current = best.get(key)
        rank = 0 if row.overlap_sky == 3 else row.overlap_sky
        if current is None or rank < (0 if current.overlap_sky == 3 else current.overlap_sky):
            best[key] = row
    return best


def client_url(url: str) -> str:
    """``QUrl::toPercentEncoding(url, ":/&?=")``: everything but unreserved and ``: / & ? =`` encoded."""
    return quote(url, safe=":/&?=")


def available(body: bytes) -> bool:
    """``elementsByTagName("vosi:available")`` (a qualified-name match, so the prefix must be vosi)."""
    found = minidom.parseString(body).getElementsByTagName("vosi:available")
    return bool(found) and found[0].firstChild is not None and found[0].firstChild.data.strip() == "true"


def split_catalogue(body: bytes) -> tuple[list[str], list[list[str]]]:
    """``VialacteaSource``: the header split on tabs, every row split on any whitespace."""
    text = body.decode()
    assert not text.startswith("<"), "a body starting with < is an error to the client"
    lines = text.split("\n")
    header = lines[0].split("\t")
    rows = [line.split() for line in lines[1:] if line]
    return header, rows


def split_tabs(body: bytes) -> tuple[list[str], list[list[str]]]:
    """``UserTableWindow``: rows split on tabs, quotes stripped."""
    lines = body.decode().replace('"', "").split("\n")
    return lines[0].split("\t"), [line.split("\t") for line in lines[1:] if line]
