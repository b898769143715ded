"""DataLink 1.1 over HTTP with pyvo: links of a dataset (#this, #cutout, #preview), the SODA
descriptors pyvo builds queries from, the file and preview downloads, NotFoundFault rows for
unknown, path-like and restricted IDs, and votlint on the document."""

from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import psycopg
import pytest
from lxml import etree
from PIL import Image
from pyvo.dal.adhoc import DatalinkResults, SodaQuery

MEDIA = "application/x-votable+xml;content=datalink"


@dataclass(frozen=True)
class Demo:
    """DIDs of the demo, and where their files are (key = the DID's part after '?')."""

    cube: str
    image: str
    private: str

    @staticmethod
    def key(did: str) -> str:
        return did.split("?", 1)[1]


@pytest.fixture(scope="module")
def demo(database) -> Demo:
    with psycopg.connect(database.url) as c:
        def first(where: str) -> str:
            return c.execute(f"SELECT obs_publisher_did FROM ivoa.obscore WHERE {where} "
                             "ORDER BY obs_publisher_did LIMIT 1").fetchone()[0]
        return Demo(
            cube=first("obs_collection = 'CHaMP' AND obs_title LIKE '13CO%'"),
            image=first("obs_collection = 'Hi-GAL'"),
            private=first("obs_collection = 'MeerKAT-private'"),
        )


def links_url(server, *ids: str) -> str:
    return server.url + "/datalink/links?" + "&".join(f"ID={quote(i, safe='')}" for i in ids)


def by_semantics(dl: DatalinkResults) -> dict[str, list]:
    out: dict[str, list] = {}
    for row in dl:
        out.setdefault(row.semantics, []).append(row)
    return out


@pytest.fixture(scope="module")
def cube_links(server, demo) -> DatalinkResults:
    return DatalinkResults.from_result_url(links_url(server, demo.cube) + "&must_include_soda=True")


def test_links_of_a_cube(cube_links, server, demo) -> None:
    rows = by_semantics(cube_links)
    assert set(rows) == {"#this", "#cutout", "#preview"}
    (this,) = rows["#this"]
    assert this.access_url == f"{server.url}/datalink/files/{demo.key(demo.cube)}"
    assert this.content_type == "application/fits" and this.content_length > 0
    assert {r.service_def for r in rows["#cutout"]} == {"soda-sync", "soda-async"}
    (preview,) = rows["#preview"]
    assert preview.content_type == "image/png"
    assert all(r.id == demo.cube and not r.error_message for r in cube_links)


def test_soda_descriptor_usable_by_pyvo(cube_links, server, conn, demo) -> None:
    proc = cube_links.get_first_proc()
    assert proc.service_def == "soda-sync"
    sync = cube_links.get_adhocservice_by_id("soda-sync")
    query = SodaQuery.from_resource(proc, sync, circle=(0.1, 0.05, 0.02))
    assert query.baseurl == server.url + "/soda/sync"
    assert dict(query) == {"ID": demo.cube, "CIRCLE": "0.1 0.05 0.02"}
    query = SodaQuery.from_resource(proc, sync, band=(2.7202e-3, 2.7205e-3), POSSYS="GALACTIC")
    assert query["BAND"] == "0.0027202 0.0027205" and query["POSSYS"] == "GALACTIC"
    async_ = cube_links.get_adhocservice_by_ivoid("ivo://ivoa.net/std/SODA#async-1")
    assert async_.ID == "soda-async"
    params = {p.name: p for p in async_.params}
    assert params["accessURL"].value == server.url + "/soda/async"
    # one ID asked: BAND and VELO carry the dataset's own ranges
    inputs = {p.name: p for g in sync.groups if g.name == "inputParams" for p in g.entries}
    assert {"ID", "POS", "CIRCLE", "POLYGON", "BAND", "TIME", "POL", "PIXELS", "POSSYS", "VELO"} <= set(inputs)
    assert (inputs["CIRCLE"].xtype, inputs["POLYGON"].xtype, inputs["BAND"].xtype) == ("circle", "polygon", "interval")
    em_min, em_max, vel_min = conn.execute(
        "SELECT em_min, em_max, vel_min FROM ivoa.obscore WHERE obs_publisher_did = %s", (demo.cube,)
    ).fetchone()
    assert float(inputs["BAND"].values.min) == pytest.approx(em_min, rel=1e-12)
    assert float(inputs["BAND"].values.max) == pytest.approx(em_max, rel=1e-12)
    assert float(inputs["VELO"].values.min) == pytest.approx(vel_min, rel=1e-12)
    assert {o[1] for o in inputs["POSSYS"].values.options} == {"ICRS", "GALACTIC"}


def test_file_download_is_the_file_on_disk(cube_links, database, demo) -> None:
    (this,) = by_semantics(cube_links)["#this"]
    resp = httpx.get(this.access_url, timeout=30)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/fits"
    on_disk = database.home / "data" / demo.key(demo.cube)
    assert resp.content == on_disk.read_bytes()
    assert f'filename="{on_disk.name}"' in resp.headers["content-disposition"]


def test_preview_is_a_png_made_once(server, database, demo) -> None:
    dl = DatalinkResults.from_result_url(links_url(server, demo.image, demo.cube))
    previews = by_semantics(dl)["#preview"]
    assert len(previews) == 2
    bodies = []
    for row in previews:
        resp = httpx.get(row.access_url, timeout=60)
        assert resp.status_code == 200 and resp.headers["content-type"] == "image/png"
        img = Image.open(io.BytesIO(resp.content))
        img.verify()
        assert img.format == "PNG" and min(img.size) >= 256
        bodies.append(resp.content)
    cache = database.home / "cache" / "previews"
    assert len(list(cache.glob("*/*.png"))) >= 2  # one directory per dataset (withdrawn with it)
    again = httpx.get(previews[0].access_url, timeout=30)
    assert again.content == bodies[0]


def test_unknown_pathlike_and_private_ids_are_not_found_rows(server, demo) -> None:
    bad = ["../../etc/passwd", "ivo://vlkb.test/vlkb?nope/nope.fits", demo.private, "/etc/passwd"]
    dl = DatalinkResults.from_result_url(links_url(server, demo.image, *bad))
    errors = {r.id: r.error_message for r in dl if r.error_message}
    assert set(errors) == set(bad)
    for did, message in errors.items():
        assert message == f"NotFoundFault: {did}: no such dataset"
    assert {r.semantics for r in dl if r.id == demo.image} == {"#this", "#cutout", "#preview"}
    assert all(not r["access_url"] and not r.service_def for r in dl if r.error_message)


@pytest.mark.parametrize("path", [
    "../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "hi-gal-70um/../../../etc/passwd",
    "PRIVATE", "hi-gal-70um/missing.fits",
])
def test_files_and_previews_only_serve_visible_datasets(server, demo, path) -> None:
    path = demo.key(demo.private) if path == "PRIVATE" else path
    for kind in ("files", "preview"):
        resp = httpx.get(f"{server.url}/datalink/{kind}/{path}", timeout=30)
        assert resp.status_code == 404, (kind, path)
        assert b"NotFoundFault" in resp.content and b"root:" not in resp.content


def test_post_formats_and_bad_requests(http: httpx.Client, demo) -> None:
    resp = http.post("/datalink/links", data={"ID": [demo.image, demo.cube], "RESPONSEFORMAT": MEDIA})
    assert resp.status_code == 200
    assert resp.headers["content-type"] == MEDIA
    assert resp.content.count(b"<TR>") == 8
    for params in ({}, {"ID": ""}, {"ID": demo.image, "RESPONSEFORMAT": "text/csv"},
                   {"ID": [f"ivo://x/{i}" for i in range(101)]}):
        bad = http.get("/datalink/links", params=params)
        assert bad.status_code == 400, params
        info = etree.fromstring(bad.content).find(".//{*}INFO[@name='QUERY_STATUS']")
        assert info.get("value") == "ERROR" and info.text.startswith("UsageError: ")


def test_votlint_clean(server, demo, tmp_path: Path) -> None:
    stilts = shutil.which("stilts")
    if stilts is None:
        pytest.fail("stilts is not installed: run `make setup`")
    for name, ids in (("one", [demo.cube]), ("many", [demo.image, demo.cube, "../../etc/passwd"])):
        doc = tmp_path / f"{name}.xml"
        doc.write_bytes(httpx.get(links_url(server, *ids), timeout=30).content)
        proc = subprocess.run([stilts, "votlint", f"votable={doc}"], capture_output=True, text=True, timeout=120)
        report = (proc.stdout + proc.stderr).strip()
        assert proc.returncode == 0 and not report, report
