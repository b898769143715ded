"""A stamps job's memory does not grow with its number of sources (issue 19, "Scale").

The runner (what a worker runs) is run in a fresh process against the test database for a small
and a large table of tiny stamps over the same few square arcminutes (so both touch the same
tile pages), in one thread and over two processes; the peak RSS of the large job stays within
12 MB of the small one's (25 MB for the pool's processes), while what the old runner kept per source (a manifest row, a
Source, an astropy manifest table at the end: some KB a source) would have added tens of MB.
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
from vo.jobs.stamps import SOURCES_FILE, run_stamps
from vo.uws.context import RunContext
from vo.uws.results import ResultStore

url, root, job, n, processes = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
rng = np.random.default_rng(n)
lon, lat = rng.uniform(-0.02, 0.02, n), rng.uniform(-0.02, 0.02, n)
table = "name,glon,glat\n" + "".join(f"s{i},{a % 360:.6f},{b:.6f}\n" for i, (a, b) in enumerate(zip(lon, lat)))
store = ResultStore(root)
with store.writer(job, SOURCES_FILE) as f:
    f.write(table.encode())
del table, lon, lat
run_stamps({"SURVEY": ["Hi-GAL/70 um"], "SIZE": ["0.002"]}, RunContext(job, url, store, timeout=None),
           max_sources=10**6, max_radius=1.0, max_voxels=10**7, list_limit=0, processes=processes)
print(json.dumps({"rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "children": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def run(database, root: Path, job: str, n: int, processes: int) -> dict:
    out = subprocess.run([sys.executable, "-c", SCRIPT, database.url, str(root), job, str(n), str(processes)],
                         capture_output=True, text=True, timeout=1200, cwd=Path(__file__).parents[2])
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2])
def test_peak_memory_does_not_grow_with_the_number_of_sources(database, tmp_path, processes) -> None:
    small, large = 400, 20_000
    peaks = {n: run(database, tmp_path, f"scale-{n}-{processes}", n, processes) for n in (small, large)}
    store = ResultStore(tmp_path)
    for n in (small, large):
        job = f"scale-{n}-{processes}"
        manifest = parse_single_table(io.BytesIO(b"".join(store.read(store.location(job, "manifest"))))).to_table()
        assert len(manifest) == n and set(manifest["status"]) == {"OK"}
        with tarfile.open(fileobj=io.BytesIO(b"".join(store.read(store.location(job, "stamps.tar.gz"))))) as tar:
            assert len(tar.getnames()) == n + 1  # a stamp per source and the manifest
    grown = peaks[large]["rss"] - peaks[small]["rss"]
    assert grown < 12, f"peak RSS grew by {grown:.1f} MB from {small} to {large} sources: {peaks}"
    if processes > 1:
        grown = peaks[large]["children"] - peaks[small]["children"]
        # the pool processes unpickle and pickle each chunk: allocator arenas give them some slack (measured
        # 12 MB from 400 to 20,000 sources); the manifest rows alone of the old runner were ~1.5 KB a source
        assert grown < 25, f"the pool processes' peak RSS grew by {grown:.1f} MB: {peaks}"


@pytest.mark.slow
@pytest.mark.parametrize("groups", [("survey-team",), ("other",)])
def test_pool_processes_read_with_the_job_owners_groups(database, tmp_path, groups) -> None:
    """Access matrix cells of the process pool: the chunks made in other processes read the restricted
    survey with the owner's groups (member: every stamp made), and an outsider's job never gets there."""
    import psycopg

    from vo.caller import Caller
    from vo.errors import UsageError
    from vo.jobs.stamps import SOURCES_FILE, run_stamps
    from vo.uws.context import RunContext

    with psycopg.connect(database.url) as c:
        ra, dec = c.execute("SELECT s_ra, s_dec FROM ivoa.obscore WHERE obs_collection = 'MeerKAT-private' "
                            "ORDER BY obs_publisher_did LIMIT 1").fetchone()
    n = 250  # two chunks: the pool is used
    table = "name,ra,dec\n" + "".join(f"p{i},{ra + (i % 25) * 1e-4},{dec + (i // 25) * 1e-4}\n" for i in range(n))
    store = ResultStore(tmp_path)
    job = f"pool-{groups[0]}"
    with store.writer(job, SOURCES_FILE) as f:
        f.write(table.encode())
    ctx = RunContext(job, database.url, store, timeout=None, caller=Caller("alice", groups))
    params = {"SURVEY": ["MeerKAT-private/1284 MHz"], "SIZE": ["0.002"]}
    if "survey-team" not in groups:
        with pytest.raises(UsageError, match="unknown survey"):
            run_stamps(params, ctx, max_sources=1000, max_radius=1.0, max_voxels=10**7, list_limit=0, processes=2)
        return
    run_stamps(params, ctx, max_sources=1000, max_radius=1.0, max_voxels=10**7, list_limit=0, processes=2)
    manifest = parse_single_table(io.BytesIO(b"".join(store.read(store.location(job, "manifest"))))).to_table()
    assert len(manifest) == n and set(manifest["status"]) == {"OK"}
