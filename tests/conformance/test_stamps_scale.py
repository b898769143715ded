"""A stamps job's memory does not grow with its number of sources (issue 19, "Scale").

The runner (what a worker runs) is run in a fresh process against the test database for a small
and a large table of tiny stamps over the same few square arcminutes (so both touch the same
tile pages), as a job EXECUTING in ``vlkb.jobs`` whose chunks are parts (``vo/uws/parts.py``: with
no other process running jobs, the runner makes them itself, through the parts table and the
results store); the peak RSS of the large job stays within 12 MB of the small one's, while what the
old runner kept per source (a manifest row, a Source, an astropy manifest table at the end: some KB a
source) would have added tens of MB.
The manifest and the tar.gz hold a row and a file per stamp (the progress a UWS client sees is
tested through the job document in test_stamps.py). Slow: tens of thousands of stamps on a shared machine.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from astropy.io.votable import parse_single_table

from vo.uws.results import ResultStore

SCRIPT = r"""
import json, resource, sys
import numpy as np
import psycopg
from app.jobs import job_parts
from vo.jobs.stamps import SOURCES_FILE, run_stamps
from vo.uws.context import RunContext
from vo.uws.liveness import new_worker_id
from vo.uws.results import ResultStore

url, root, job, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
worker = new_worker_id()
with psycopg.connect(url) as c:
    # EXECUTING under this process; nothing beats for it, so its heartbeat is set ahead (no reaper ends it)
    c.execute("INSERT INTO vlkb.jobs (job_id, kind, phase, start_time, worker, heartbeat)"
              " VALUES (%s, 'stamps', 'EXECUTING', now(), %s, now() + interval '1 day')", (job, worker))
rng = np.random.default_rng(n)
lon, lat = rng.uniform(-0.02, 0.02, n), rng.uniform(-0.02, 0.02, n)
table = "name,glon,glat\n" + "".join(f"s{i},{a % 360:.6f},{b:.6f}\n" for i, (a, b) in enumerate(zip(lon, lat)))
store = ResultStore(root)
with store.writer(job, SOURCES_FILE) as f:
    f.write(table.encode())
del table, lon, lat
run_stamps({"SURVEY": ["Hi-GAL/70 um"], "SIZE": ["0.002"]},
           RunContext(job, url, store, timeout=None, parts=job_parts(), worker_id=worker),
           max_sources=10**6, max_radius=1.0, max_voxels=10**7, list_limit=0)
with psycopg.connect(url) as c:  # ended as a worker ends it (else a reaper would see its process gone)
    c.execute("UPDATE vlkb.jobs SET phase = 'COMPLETED', end_time = now() WHERE job_id = %s", (job,))
print(json.dumps({"rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(database, root: Path, job: str, n: int) -> dict:
    out = subprocess.run([sys.executable, "-c", SCRIPT, database.url, str(root), job, str(n)],
                         capture_output=True, text=True, timeout=1200, cwd=Path(__file__).parents[2])
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_number_of_sources(database, tmp_path) -> None:
    small, large = 400, 20_000
    tag = tmp_path.name  # job ids unique in the session database
    # the results store of the session's `vlkb serve`, which may run some parts of these jobs too
    root = database.home / "results"
    peaks = {n: run(database, root, f"scale-{n}-{tag}", n) for n in (small, large)}
    store = ResultStore(root)
    for n in (small, large):
        job = f"scale-{n}-{tag}"
        manifest = parse_single_table(io.BytesIO(b"".join(store.read(store.location(job, "manifest"))))).to_table()
        assert len(manifest) == n and set(manifest["status"]) == {"OK"}
        with tarfile.open(fileobj=io.BytesIO(b"".join(store.read(store.location(job, "stamps.tar.gz"))))) as tar:
            assert len(tar.getnames()) == n + 1  # a stamp per source and the manifest
        # every part's output was read back and removed: only the job's own files are left
        assert sorted(p.name for p in (root / job).iterdir()) == ["manifest", "sources.table", "stamps.tar.gz"]
    grown = peaks[large]["rss"] - peaks[small]["rss"]
    assert grown < 12, f"peak RSS grew by {grown:.1f} MB from {small} to {large} sources: {peaks}"


@pytest.mark.slow
@pytest.mark.parametrize("groups", [("survey-team",), ("other",)])
def test_parts_read_with_the_job_owners_groups(database, tmp_path, groups) -> None:
    """Access matrix cells of the job's parts: the chunks, made as parts of the job (``vo/uws/parts.py``),
    read the restricted survey with the owner's groups (member: every stamp made), and an outsider's job
    never gets there."""
    import psycopg

    from app.jobs import job_parts
    from vo.caller import Caller
    from vo.errors import UsageError
    from vo.jobs.stamps import SOURCES_FILE, run_stamps
    from vo.uws.context import RunContext
    from vo.uws.liveness import new_worker_id

    worker = new_worker_id()
    with psycopg.connect(database.url) as c:
        ra, dec = c.execute("SELECT s_ra, s_dec FROM ivoa.obscore WHERE obs_collection = 'MeerKAT-private' "
                            "ORDER BY obs_publisher_did LIMIT 1").fetchone()
    n = 250  # two chunks: two parts
    table = "name,ra,dec\n" + "".join(f"p{i},{ra + (i % 25) * 1e-4},{dec + (i // 25) * 1e-4}\n" for i in range(n))
    store = ResultStore(database.home / "results")  # the session `vlkb serve` may run some parts too
    job = f"parts-{groups[0]}-{tmp_path.name}"
    with psycopg.connect(database.url) as c:
        # EXECUTING under this process; nothing beats for it, so its heartbeat is set ahead (no reaper ends it)
        c.execute("INSERT INTO vlkb.jobs (job_id, kind, owner, owner_groups, phase, start_time, worker, heartbeat)"
                  " VALUES (%s, 'stamps', 'alice', %s, 'EXECUTING', now(), %s, now() + interval '1 day')",
                  (job, list(groups), worker))
    with store.writer(job, SOURCES_FILE) as f:
        f.write(table.encode())
    ctx = RunContext(job, database.url, store, timeout=None, caller=Caller("alice", groups), parts=job_parts(),
                     worker_id=worker)
    params = {"SURVEY": ["MeerKAT-private/1284 MHz"], "SIZE": ["0.002"]}
    if "survey-team" not in groups:
        with pytest.raises(UsageError, match="unknown survey"):
            run_stamps(params, ctx, max_sources=1000, max_radius=1.0, max_voxels=10**7, list_limit=0)
        return
    run_stamps(params, ctx, max_sources=1000, max_radius=1.0, max_voxels=10**7, list_limit=0)
    manifest = parse_single_table(io.BytesIO(b"".join(store.read(store.location(job, "manifest"))))).to_table()
    assert len(manifest) == n and set(manifest["status"]) == {"OK"}
