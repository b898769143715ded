"""Multi-cutout over UWS as the ViaLactea client runs it, against the real server."""

from __future__ import annotations

import io
import json
import subprocess
from xml.etree import ElementTree

import httpx
import psycopg
import pytest
from astropy.io import fits

from tests.conftest import VLKB
from tests.vialactea.legacy_client import (
    UWS,
    archive_members,
    circle_points,
    covers,
    poll,
    range_points,
    run_mcutout,
    submit_mcutout,
    successes,
)

pytestmark = pytest.mark.timeout(120)


def circle(t, r: float = 0.02) -> dict:
    return {"id": t.did, "possys": "GALACTIC", "pos": {"circle": {"lon": t.glon, "lat": t.glat, "radius": r}}}


def box(t, half: float = 0.02) -> dict:
    return {"id": t.did, "possys": "GALACTIC", "pos": {"range": {
        "lon1": t.glon - half, "lon2": t.glon + half, "lat1": t.glat - half, "lat2": t.glat + half}}}


def test_mcutout_flow_report_and_archive(http, image, cube, private) -> None:
    velo = box(cube) | {"velo": {"vl": cube.vel_min, "vu": (cube.vel_min + cube.vel_max) / 2}}
    entries = [
        circle(image),
        velo,
        {"id": "ivo://vlkb.test/vlkb?nothing/here.fits", "possys": "GALACTIC",
         "pos": {"circle": {"lon": 10, "lat": 0, "radius": 0.1}}},
        circle(private),  # restricted: anonymous callers are told it does not exist
        circle(image) | {"pos": {"circle": {"lon": (image.glon + 180) % 360, "lat": 40, "radius": 0.05}}},
        {"id": image.did, "pos": {"square": {"x": 1}}},
        box(image),
    ]
    run = run_mcutout(http, entries)
    assert run.phases[-1] == "COMPLETED"
    assert [e["index"] for e in run.report] == list(range(len(entries)))
    assert [e["input"] for e in run.report] == json.loads(json.dumps(entries))
    assert successes(run.report) == [True, True, False, False, False, False, True]
    failed = run.report[2:6]
    assert [e["type"] for e in failed] == ["NotFoundFault", "NotFoundFault", "UsageError", "UsageError"]
    # hidden and missing read the same, but for the ID itself
    assert failed[0]["value"].replace(entries[2]["id"], "") == failed[1]["value"].replace(private.did, "")
    assert "overlap" in failed[2]["value"] and "pos" in failed[3]["value"]

    members = archive_members(run.archive)
    names = [e["value"] for e in run.report if e["type"] == "filename"]
    assert sorted(members) == sorted([*names, "report.json"])
    assert json.loads(members["report.json"]) == run.report
    img, cub, img_box = (members[n] for n in names)
    assert covers(img, circle_points(image.glon, image.glat, 0.02))
    assert covers(cub, range_points(cube.glon - 0.02, cube.glon + 0.02, cube.glat - 0.02, cube.glat + 0.02))
    assert covers(img_box, range_points(image.glon - 0.02, image.glon + 0.02, image.glat - 0.02, image.glat + 0.02))
    # each cut is exactly what /soda/sync answers for the same request
    sync = http.get("/soda/sync", params={"ID": image.did, "POSSYS": "GALACTIC",
                                          "POS": f"CIRCLE {image.glon} {image.glat} 0.02"})
    assert sync.status_code == 200 and sync.content == img
    with fits.open(io.BytesIO(cub)) as hdus:
        full = fits.getheader(io.BytesIO(http.get("/soda/sync", params={
            "ID": cube.did, "POSSYS": "GALACTIC", "POS": f"CIRCLE {cube.glon} {cube.glat} 0.01"}).content))
        assert 0 < hdus[0].header["NAXIS3"] < full["NAXIS3"], "the velocity range narrows the cube"


def test_restricted_dataset_for_its_group(http, server, private) -> None:
    token = subprocess.run([VLKB, "dev-token", "--user", "alice", "--groups", "survey-team"], env=server.env,
                           capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    auth = {"Authorization": f"Bearer {token}"}
    run = run_mcutout(http, [circle(private)], **auth)
    assert successes(run.report) == [True]
    assert covers(archive_members(run.archive)[run.report[0]["value"]], circle_points(private.glon, private.glat, 0.02))
    # the job and its results belong to alice: anybody else is told it does not exist
    assert http.get(f"{UWS}/{run.job}/phase").status_code == 404
    assert http.get(f"{UWS}/{run.job}/results/mcutout.tar.gz").status_code == 404


@pytest.mark.parametrize("body, text", [
    (b"[{\"id\": ", "not valid JSON"),
    (b"{\"id\": \"x\"}", "JSON array"),
    (b"[]", "empty"),
    (b"[1, 2]", "not a JSON object"),
])
def test_bad_documents_are_refused_and_leave_no_job(http, database, body, text) -> None:
    def jobs() -> int:
        with psycopg.connect(database.url) as c:
            return c.execute("SELECT count(*) FROM vlkb.jobs WHERE kind = 'mcutout'").fetchone()[0]

    before = jobs()
    r = submit_mcutout(http, body)
    assert r.status_code == 400 and "location" not in r.headers
    info = ElementTree.fromstring(r.content).find(".//{*}INFO[@name='QUERY_STATUS']")
    assert info is not None and info.get("value") == "ERROR" and text in info.text
    assert jobs() == before


def test_pending_job_runs_on_phase_run(http, image) -> None:
    created = http.post(UWS, files={"mcutout": ("mcutout", json.dumps([circle(image)]), "application/json")})
    assert created.status_code == 303
    job = created.headers["location"].rsplit("/", 1)[-1]
    assert http.get(f"{UWS}/{job}/phase").text == "PENDING"  # UWS 1.1: no PHASE=RUN, no run
    resumed = http.post(f"{UWS}/{job}/phase", data={"PHASE": "RUN"}, follow_redirects=False)
    assert resumed.status_code == 303 and resumed.headers["location"].endswith(f"{UWS}/{job}")
    assert poll(http, job)[-1] == "COMPLETED"
    # a second RUN of a finished job is harmless: still 303
    assert http.post(f"{UWS}/{job}/phase", data={"PHASE": "RUN"}, follow_redirects=False).status_code == 303


def test_job_without_a_document_ends_in_error(http) -> None:
    r = http.post(UWS, params={"PHASE": "RUN"}, data={"RUNID": "x"}, follow_redirects=False)
    assert r.status_code == 303
    job = r.headers["location"].rsplit("/", 1)[-1]
    assert poll(http, job)[-1] == "ERROR"
    error = http.get(f"{UWS}/{job}/error")
    assert b"mcutout: missing" in error.content


def test_results_are_listed_in_the_job_document(http, image) -> None:
    run = run_mcutout(http, [circle(image)])
    doc = httpx.get(f"{http.base_url}{UWS}/{run.job}/results").text
    assert "Report" in doc and "mcutout.tar.gz" in doc and "mcutout.json" not in doc
