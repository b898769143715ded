"""What the ViaLactea client does with the legacy XML and multi-cutout answers, written the way its C++ code does it.

``MCutoutSummary``: submit, poll the plain-text phase, answer HELD with ``PHASE=RUN``, read the
JSON Report and the archive. ``xmlparser``: read the legacy XML token by token, as
``QXmlStreamReader`` would (whitespace text nodes included), so a layout change that the client
would trip on fails these tests too. ``getBestCutout``: rank datasets by overlap code.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from xml.sax import make_parser
from xml.sax.handler import ContentHandler

import httpx
import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

UWS = "/vlkb/datasets/soda/async/uws"
TERMINAL = ("COMPLETED", "ABORTED", "ERROR")


@dataclass
class McutoutRun:
    job: str
    phases: list[str]
    report: list[dict]
    archive: bytes


def submit_mcutout(http: httpx.Client, entries: list | bytes, **headers: str) -> httpx.Response:
    """The client's POST: one multipart part ``mcutout`` (filename mcutout, application/json), PHASE=RUN."""
    body = entries if isinstance(entries, bytes) else json.dumps(entries).encode()
    return http.post(UWS, params={"PHASE": "RUN"}, files={"mcutout": ("mcutout", body, "application/json")},
                     headers=headers, follow_redirects=False)


def poll(http: httpx.Client, job: str, timeout: float = 90, **headers: str) -> list[str]:
    """GET phase until a terminal phase; HELD is answered with POST phase PHASE=RUN (expects 303)."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = http.get(f"{UWS}/{job}/phase", headers=headers, follow_redirects=False)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain"), r.text
        phase = r.text.strip()
        seen.append(phase)
        if phase in TERMINAL:
            return seen
        if phase == "HELD":
            resumed = http.post(f"{UWS}/{job}/phase", data={"PHASE": "RUN"}, headers=headers,
                                follow_redirects=False)
            assert resumed.status_code == 303
        time.sleep(0.1)
    raise AssertionError(f"job {job} still {seen[-1]}")


def run_mcutout(http: httpx.Client, entries: list, **headers: str) -> McutoutRun:
    r = submit_mcutout(http, entries, **headers)
    assert r.status_code == 303, r.text
    job = r.headers["location"].rstrip("/").rsplit("/", 1)[-1]
    phases = poll(http, job, **headers)
    assert phases[-1] == "COMPLETED", (phases, http.get(f"{UWS}/{job}/error", headers=headers).text)
    report = http.get(f"{UWS}/{job}/results/Report", headers=headers, follow_redirects=False)
    assert report.status_code == 200, report.text
    archive = http.get(f"{UWS}/{job}/results/mcutout.tar.gz", headers=headers, follow_redirects=False)
    assert archive.status_code == 200 and archive.headers["content-type"] == "application/gzip"
    return McutoutRun(job, phases, json.loads(report.content), archive.content)


def successes(report: list[dict]) -> list[bool]:
    """What the client counts as a success: ``type`` equal to ``filename``, any case."""
    return [str(e.get("type", "")).lower() == "filename" for e in report]


def archive_members(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def covers(data: bytes, points: list[tuple[float, float]], frame: str = "galactic") -> bool:
    """Whether the celestial WCS of the FITS file holds every (lon, lat) point, within half a pixel."""
    from astropy.coordinates import SkyCoord

    with fits.open(io.BytesIO(data)) as hdus:
        header = hdus[0].header
        wcs = WCS(header).celestial
        shape = hdus[0].data.shape[-2:]
    lon, lat = np.array(points).T
    sky = SkyCoord(lon, lat, unit="deg", frame=frame)
    x, y = wcs.world_to_pixel(sky)
    ny, nx = shape
    return bool(np.all((x >= -0.5 - 1e-6) & (x <= nx - 0.5 + 1e-6) & (y >= -0.5 - 1e-6) & (y <= ny - 0.5 + 1e-6)))


def circle_points(lon: float, lat: float, r: float) -> list[tuple[float, float]]:
    """The centre and the four extreme points of a small circle."""
    dl = r / np.cos(np.radians(lat))
    return [(lon, lat), (lon - dl, lat), (lon + dl, lat), (lon, lat - r), (lon, lat + r)]


def range_points(l1: float, l2: float, b1: float, b2: float) -> list[tuple[float, float]]:
    return [(l1, b1), (l1, b2), (l2, b1), (l2, b2)]


# -- the legacy XML, token by token ----------------------------------------------------------------
@dataclass
class Token:
    """One QXmlStreamReader token: StartElement, EndElement or Characters (whitespace too)."""

    kind: str
    name: str = ""
    text: str = ""
    attrs: dict[str, str] = field(default_factory=dict)


class _Tokens(ContentHandler):
    def __init__(self) -> None:
        super().__init__()
        self.tokens: list[Token] = []

    def startElement(self, name, attrs):  # noqa: N802 - SAX API
        self.tokens.append(Token("start", name, attrs=dict(attrs)))

    def endElement(self, name):  # noqa: N802 - SAX API
        self.tokens.append(Token("end", name))

    def characters(self, content):
        if self.tokens and self.tokens[-1].kind == "chars":
            self.tokens[-1].text += content
        else:
            self.tokens.append(Token("chars", text=content))


def tokens(xml: bytes) -> list[Token]:
    handler = _Tokens()
    parser = make_parser()
    parser.setContentHandler(handler)
    parser.feed(xml)
    parser.close()
    return handler.tokens


def _text_after(it: Iterator[Token]) -> str:
    """``readElementText``: the characters up to the end of the element just started."""
    out = ""
    for t in it:
        if t.kind == "end":
            return out
        out += t.text
    raise AssertionError("unterminated element")


@dataclass
class Datacube:
    survey: str
    species: str
    transition: str
    velocity_unit: str
    code: int
    did: str
    cutout_url: str
    mosaic_url: str | None
    corners: list[tuple[float, float]]


def _parse_bounds(it: Iterator[Token]) -> list[tuple[float, float]]:
    """``parseBounds``: at ``<P1>``..``<P4>`` read exactly three tokens ahead (the whitespace, then
    ``<longitude>``, its text), then again for the latitude; stop at ``</SkyCoordSystem>``."""
    corners = []
    for t in it:
        if t.kind == "end" and t.name == "SkyCoordSystem":
            return corners
        if t.kind == "start" and t.name in ("P1", "P2", "P3", "P4"):
            ws, lon_start, lon_text = next(it), next(it), next(it)
            assert ws.kind == "chars" and not ws.text.strip(), "the client expects a whitespace node after <Pn>"
            assert lon_start.kind == "start" and lon_start.name == "longitude"
            next(it)  # </longitude>
            ws2, lat_start, lat_text = next(it), next(it), next(it)
            assert ws2.kind == "chars" and not ws2.text.strip()
            assert lat_start.kind == "start" and lat_start.name == "latitude"
            corners.append((float(lon_text.text), float(lat_text.text)))
    raise AssertionError("no </SkyCoordSystem>")


def parse_search(xml: bytes) -> list[Datacube]:
    """``xmlparser::parseXmlAndGetList``: surveys (read until ``</RestFreq>``), then their datacubes."""
    it = iter(tokens(xml))
    cubes: list[Datacube] = []
    survey: dict[str, str] = {}
    for t in it:
        if t.kind != "start":
            continue
        if t.name == "survey":
            survey = {}
            for s in it:  # parseSurvey: until </RestFreq>
                if s.kind == "start":
                    survey[s.name] = _text_after(it)
                    if s.name == "RestFreq":
                        break
                elif s.kind == "end" and s.name == "survey":
                    raise AssertionError("<RestFreq> must exist and come last in <survey>")
            else:
                raise AssertionError("unterminated survey")
        elif t.name == "datacube":
            code, did, cut, mosaic, corners = -1, "", "", None, []
            for d in it:
                if d.kind == "end" and d.name == "datacube":
                    break
                if d.kind != "start":
                    continue
                if d.name == "code":
                    code = int(_text_after(it))
                elif d.name == "PublisherDID":
                    did = _text_after(it)
                elif d.name == "URL":
                    value = _text_after(it)
                    if d.attrs.get("type") == "mosaic":
                        mosaic = value
                    else:
                        cut = value
                elif d.name == "SkyCoordSystem":
                    corners = _parse_bounds(it)
            name = survey.get("Survey", "")
            species, transition = survey.get("Species", ""), survey.get("Transition", "")
            if not name:  # the client's fallback
                name, species, transition = "Extinction_Map", "dust", "visual"
            cubes.append(Datacube(name, species, transition, survey.get("VelocityUnit", ""), code, did, cut,
                                  mosaic, corners))
    return cubes


def client_filter(cubes: list[Datacube]) -> list[Datacube]:
    """Drop overlap codes 1 and 6 and DIDs whose last ``_`` token is 2 or 3; sort by survey."""
    kept = [c for c in cubes if c.code not in (1, 6) and c.did.rsplit("_", 1)[-1] not in ("2", "3")]
    return sorted(kept, key=lambda c: c.survey)


def best_cutout(cubes: list[Datacube]) -> dict[tuple[str, str, str], Datacube]:
    """``getBestCutout``: per sub-survey the full overlap (code 3) if any, else the lowest code."""
    best: dict[tuple[str, str, str], Datacube] = {}
    for c in cubes:
        key = (c.survey, c.species, c.transition)
        rank = 0 if c.code == 3 else c.code
        if key not in best or rank < (0 if best[key].code == 3 else best[key].code):
            best[key] = c
    return best


def parse_cut(xml: bytes) -> dict[str, object]:
    """``xmlparser::parseXML``: the ``<URL>`` download link, ``<CUT>`` nodes, optional null percentage."""
    it = iter(tokens(xml))
    out: dict[str, object] = {"cuts": 0, "url": None, "percent": None}
    for t in it:
        if t.kind != "start":
            continue
        if t.name == "CUT":
            out["cuts"] = int(out["cuts"]) + 1
        elif t.name == "URL":
            out["url"] = _text_after(it)
        elif t.name == "percent":
            out["percent"] = float(_text_after(it))
    return out
