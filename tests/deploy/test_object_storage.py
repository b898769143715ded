"""Datasets and job results on S3, against a real S3-compatible server (moto's standalone server in
a subprocess, behind a relay that counts the bytes the store sends):

- ``vlkb ingest datasets 's3://bucket/*.fits'`` lists the bucket and reads headers only;
- a SODA cutout of a file in the bucket gives the pixels of the file (checked with astropy on the
  local copy) and fetches at most 1.2 times the slab's bytes: counted by the relay on the wire,
  and by the service's own counters in ``/metrics``;
- an async job writes its result into the results bucket, the service streams it back to the
  job's owner, and deleting the job deletes the object.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import psycopg
import pytest
from astropy.io import fits

from tests.app.test_cli_errors import run_vlkb
from tests.conftest import Server, forget_survey, running_server
from tests.s3_server import S3Server, s3_server

SURVEY = "S3StoreTest"
DATA, RESULTS = "vlkb-data", "vlkb-results"
#: the part of a cutout's fetch that is not the slab: the FITS header is read through one
#: read-ahead block (vo/cutout/source.py: 64 KiB) plus a HEAD of the object, by each of the two
#: opens of a cut (planning, then the pixels)
HEADER_ALLOWANCE = 2 * (64 * 1024 + 2880)
#: HTTP response headers moto sends with each ranged GET (measured: about 600 bytes), with margin
PER_REQUEST = 1024

pytestmark = pytest.mark.timeout(240)


@dataclass(frozen=True)
class Remote:
    """The store, the local originals and the service that reads them from the bucket."""

    s3: S3Server
    files: dict[str, Path]  # object name -> local original
    server: Server
    moto_log: Path


def _fs(s3: S3Server):  # noqa: ANN202 - s3fs has no type hints
    import s3fs

    return s3fs.S3FileSystem(key=s3.env["AWS_ACCESS_KEY_ID"], secret=s3.env["AWS_SECRET_ACCESS_KEY"],
                             client_kwargs={"endpoint_url": s3.endpoint}, skip_instance_cache=True)


@pytest.fixture(scope="module")
def remote(database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    pytest.importorskip("s3fs")
    logs = tmp_path_factory.mktemp("moto")
    data = database.home / "data"
    originals = [sorted((data / "champ-13co-1-0").glob("*.fits"))[0], sorted((data / "hi-gal-70um").glob("*.fits"))[0]]
    with s3_server(logs) as s3:
        fs = _fs(s3)
        fs.mkdir(DATA)
        fs.mkdir(RESULTS)
        for f in originals:
            fs.put(str(f), f"{DATA}/survey/{f.name}")
        s3.reset()
        proc = run_vlkb("ingest", "datasets", "--survey", SURVEY, "--species", "13CO", "--transition", "mixed",
                        f"s3://{DATA}/survey/*.fits", VLKB_HOME=str(database.home), VLKB_DB_PORT=str(database.port),
                        **s3.env)
        ingest_bytes = s3.reset()
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "2 ingested" in proc.stdout, proc.stdout
        # headers only: the two files are 4 and 2.7 MB, the listing and two headers a few read-ahead blocks
        assert 0 < ingest_bytes < sum(f.stat().st_size for f in originals) / 10, ingest_bytes
        with pytest.MonkeyPatch.context() as mp:
            for k, v in s3.env.items():
                mp.setenv(k, v)
            try:
                with running_server(database, results_url=f"s3://{RESULTS}/jobs") as server:
                    yield Remote(s3, {f.name: f for f in originals}, server, next(logs.glob("moto-*.log")))
            finally:
                forget_survey(database.url, SURVEY)


def _datasets(database) -> dict[str, tuple[str, float, float]]:
    """Object name -> (publisher DID, centre glon, glat) of the datasets ingested from the bucket."""
    with psycopg.connect(database.url) as conn:
        rows = conn.execute("SELECT d.path, d.publisher_did FROM vlkb.datasets d WHERE d.survey = %s",
                            (SURVEY,)).fetchall()
    out = {}
    for path, did in rows:
        assert path.startswith(f"s3://{DATA}/survey/"), path
        out[path.rsplit("/", 1)[1]] = did
    return out


def _centre(local: Path) -> tuple[float, float]:
    h = fits.getheader(local)
    return float(h["CRVAL1"]), float(h["CRVAL2"])


def _check_pixels(body: bytes, local: Path) -> int:
    """The cut's pixels are the original's at the offset its header says; returns the slab's bytes."""
    cut = fits.open(io.BytesIO(body))[0]
    with fits.open(local, do_not_scale_image_data=True) as hdul:
        orig = hdul[0]
        n = int(orig.header["NAXIS"])
        starts = [round(float(orig.header[f"CRPIX{i}"]) - float(cut.header[f"CRPIX{i}"])) for i in range(n, 0, -1)]
        window = tuple(slice(s, s + m) for s, m in zip(starts, cut.data.shape, strict=True))
        np.testing.assert_array_equal(cut.data, orig.data[window])
    return int(cut.data.nbytes)


def _requests_logged(log: Path) -> int:
    return len(re.findall(r'"(?:\x1b\[[0-9;]*m)*(?:GET|HEAD) ', log.read_text(errors="replace")))


def _metric(text: str, name: str) -> float:
    found = re.search(rf"^{name} ([0-9.e+]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def test_ingested_from_the_bucket(remote: Remote, database) -> None:
    assert set(_datasets(database)) == set(remote.files)


@pytest.mark.parametrize("radius", [0.05, 0.12])
def test_cutouts_fetch_at_most_1_2_times_the_slab(remote: Remote, database, radius: float) -> None:
    with httpx.Client(base_url=remote.server.url, timeout=120) as http:
        for name, did in sorted(_datasets(database).items()):
            local = remote.files[name]
            glon, glat = _centre(local)
            before = http.get("/metrics").text
            remote.s3.reset()
            requests_before = _requests_logged(remote.moto_log)
            r = http.get("/soda/sync", params={"ID": did, "POS": f"CIRCLE {glon} {glat} {radius}",
                                                 "POSSYS": "GALACTIC"})
            wire = remote.s3.reset()
            time.sleep(0.2)  # the store's log line of the last request
            requests = _requests_logged(remote.moto_log) - requests_before
            assert r.status_code == 200, r.text
            slab = _check_pixels(r.content, local)
            assert slab < local.stat().st_size / 3, "the cut must be a small part of the file for this test"
            # on the wire: the slab within 1.2x, plus the header read and each response's HTTP headers
            assert wire <= 1.2 * slab + HEADER_ALLOWANCE + PER_REQUEST * requests, (name, wire, slab, requests)
            # the service's own count of the slab reads: fetched within 1.2x of wanted, wanted = the slab
            after = http.get("/metrics").text
            fetched = (_metric(after, "vlkb_storage_bytes_fetched_total")
                       - _metric(before, "vlkb_storage_bytes_fetched_total"))
            wanted = (_metric(after, "vlkb_storage_bytes_wanted_total")
                      - _metric(before, "vlkb_storage_bytes_wanted_total"))
            assert wanted == slab and slab <= fetched <= 1.2 * slab, (name, fetched, wanted, slab)
            print(f"{name} r={radius}: slab {slab} B, fetched {int(fetched)} B ({fetched / slab:.3f}x), "
                  f"wire {wire} B in {requests} requests")


def test_job_results_in_the_bucket(remote: Remote, database) -> None:
    name, did = sorted(_datasets(database).items())[0]
    local = remote.files[name]
    glon, glat = _centre(local)
    fs = _fs(remote.s3)
    with httpx.Client(base_url=remote.server.url, timeout=60) as http:
        r = http.post("/soda/async", data={"ID": did, "POS": f"CIRCLE {glon} {glat} 0.05", "POSSYS": "GALACTIC"},
                      params={"PHASE": "RUN"})
        assert r.status_code == 303, r.text
        job = r.headers["location"]
        job_id = job.rsplit("/", 1)[1]
        deadline = time.monotonic() + 90
        while (phase := http.get(job + "/phase").text) in ("PENDING", "QUEUED", "EXECUTING"):
            assert time.monotonic() < deadline, phase
            time.sleep(0.1)
        assert phase == "COMPLETED", http.get(job).text
        stored = sorted(fs.ls(f"{RESULTS}/jobs/{job_id}"))
        assert [p.rsplit("/", 1)[1] for p in stored] == ["cut-0001.fits", "manifest"]
        cut = http.get(f"{job}/results/cut-0001.fits")
        assert cut.status_code == 200 and cut.headers["content-type"] == "application/fits"
        assert cut.content == fs.cat(f"{RESULTS}/jobs/{job_id}/cut-0001.fits")
        assert int(cut.headers["content-length"]) == len(cut.content)
        _check_pixels(cut.content, local)
        # streamed through the service: the URL is the service's, and nothing in the bucket is public
        assert cut.url.host == "127.0.0.1" and not cut.history
        assert http.delete(job).status_code in (200, 303)
        fs.invalidate_cache()
        assert not fs.exists(f"{RESULTS}/jobs/{job_id}/cut-0001.fits")
