"""Dataset files on fsspec URLs: headers read through ranged requests (never the whole file),
the same ObsCore rows as from local disk, clear reasons for unreachable or broken remote files,
and locations normalised the way the server will find them again."""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import numpy as np
import pytest

from demo.surveys import DEMO_SURVEYS, Survey
from tests.http_files import FileServer, serve_directory
from vo import observe, storage
from vo.ingest.datasets import describe_file, read_image_header
from vo.ingest.obscore import IngestError
from vo.preview import render_preview

AUTH = "vlkb.test"


@pytest.fixture(scope="module")
def survey_files(database) -> tuple[Survey, Survey, Path]:
    """One image survey and one cube survey of the demo (the files the session fixture wrote)."""
    by_slug = {s.slug: s for s, _ in DEMO_SURVEYS}
    return by_slug["hi-gal-70um"], by_slug["champ-13co-1-0"], database.home / "data"


@pytest.fixture()
def http_root(survey_files, tmp_path: Path) -> Iterator[tuple[FileServer, Path]]:
    """A fresh server (fresh byte counts) over the files of both surveys, flattened in one directory."""
    _, _, root = survey_files
    flat = tmp_path / "www"
    flat.mkdir()
    for f in [*root.glob("hi-gal-70um/*.fits"), *root.glob("champ-13co-1-0/*.fits")]:
        shutil.copy(f, flat / f.name)
    with serve_directory(flat) as server:
        yield server, flat


def _survey_of(survey_files, name: str) -> Survey:
    image, cube, _ = survey_files
    return cube if name.startswith("champ") else image


def test_http_rows_equal_local_rows_and_read_only_headers(survey_files, http_root) -> None:
    server, flat = http_root
    files = sorted(flat.glob("*.fits"))
    assert any(f.name.startswith("champ") for f in files) and any(f.name.startswith("hi-gal") for f in files)
    for f in files:
        survey = _survey_of(survey_files, f.name)
        local = describe_file(f, survey, authority=AUTH)
        remote = describe_file(server.url_of(f.name), survey, authority=AUTH)
        assert remote == local
        size = f.stat().st_size
        assert size > 4 * storage.BLOCK_SIZE, "files must be larger than a read-ahead block for this test"
        # one read-ahead block per header: the first 80 bytes, then the header, in the same block
        assert 0 < server.sent[f.name] <= 2 * storage.BLOCK_SIZE < size / 2, (f.name, server.sent[f.name], size)


def test_http_preview_reads_a_subsample(survey_files, http_root) -> None:
    server, flat = http_root
    cube = next(f for f in sorted(flat.glob("*.fits")) if f.name.startswith("champ"))
    png = render_preview(server.url_of(cube.name))
    assert png == render_preview(cube)  # the same picture as from disk


def test_http_bad_files_have_reasons(survey_files, http_root) -> None:
    server, flat = http_root
    good = next(iter(sorted(flat.glob("*.fits")))).read_bytes()
    (flat / "text.fits").write_bytes(b"plain text, not FITS\n" * 300)
    (flat / "cut.fits").write_bytes(good[: len(good) // 3])
    cases = {
        "missing.fits": "cannot read the file",
        "text.fits": "not a FITS file",
        "cut.fits": "truncated: HDU 0 declares",
    }
    for name, reason in cases.items():
        with pytest.raises(IngestError, match=re.escape(reason)):
            read_image_header(server.url_of(name))
    with pytest.raises(IngestError, match="cannot read the file"):
        read_image_header("http://127.0.0.1:1/nothing-listens-here.fits")


def test_memory_filesystem_and_globs(survey_files) -> None:
    image, _, root = survey_files
    fs = fsspec.filesystem("memory")
    prefix = f"/vlkb-{uuid.uuid4().hex}"
    try:
        local = sorted((root / image.slug).glob("*.fits"))
        for f in local:
            fs.pipe(f"{prefix}/{f.name}", f.read_bytes())
        found = storage.expand(f"memory://{prefix}/*.fits")
        assert found == [f"memory://{prefix}/{f.name}" for f in local]
        for url, f in zip(found, local, strict=True):
            assert describe_file(url, image, authority=AUTH) == describe_file(
                f, image, authority=AUTH)
            assert storage.file_info(url).size == f.stat().st_size
            assert b"".join(storage.iter_chunks(url, chunk=4096)) == f.read_bytes()
    finally:
        fs.rm(prefix, recursive=True)


def test_locations_are_normalised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a b.fits").write_bytes(b"")
    assert storage.location("a b.fits") == str(tmp_path / "a b.fits")
    assert storage.location("file://" + str(tmp_path / "a%20b.fits")) == str(tmp_path / "a b.fits")
    assert storage.location("s3://bucket/x.fits") == "s3://bucket/x.fits"
    assert storage.expand(str(tmp_path / "*.fits")) == [str(tmp_path / "a b.fits")]
    assert storage.name_of("https://host/dir/x%201.fits?sig=1") == "x%201.fits"
    assert storage.is_remote("memory://x") and not storage.is_remote("file:///x") and not storage.is_remote("/x")
    assert np.all([storage.name_of(p) == "x.fits" for p in ("/d/x.fits", "s3://b/d/x.fits")])


def test_plan_ranges_keeps_within_the_over_read_budget() -> None:
    rng = np.random.default_rng(21)
    for _ in range(200):
        n = int(rng.integers(1, 300))
        lengths = rng.integers(1, 5000, n)
        gaps = rng.integers(0, 20000, n)
        starts = np.cumsum(gaps + np.concatenate(([0], lengths[:-1])))
        ends = starts + lengths
        wanted = int(lengths.sum())
        bs, be = storage.plan_ranges(starts, ends)
        fetched = int((be - bs).sum())
        assert wanted <= fetched <= 1.2 * wanted
        # every wanted range lies inside exactly one request, and requests are disjoint and ordered
        block = np.searchsorted(bs, starts, side="right") - 1
        assert np.all(block >= 0) and np.all(ends <= be[block]) and np.all(bs[1:] > be[:-1])
        # smallest gaps first: any gap left unmerged is at least as large as every merged one
        merged = block[1:] == block[:-1]
        g = starts[1:] - ends[:-1]
        if merged.any() and (~merged).any():
            assert g[merged].max() <= g[~merged].min()


def test_plan_ranges_edges() -> None:
    # touching ranges cost nothing to merge: one request
    bs, be = storage.plan_ranges([0, 10, 20], [10, 20, 30])
    assert bs.tolist() == [0] and be.tolist() == [30]
    # no budget: one request per range with a gap
    bs, be = storage.plan_ranges([0, 20], [10, 30], overread=1.0)
    assert bs.tolist() == [0, 20] and be.tolist() == [10, 30]
    # a request never grows past max_block
    bs, be = storage.plan_ranges([0, 10, 20], [10, 20, 30], max_block=20)
    assert bs.tolist() == [0, 20] and be.tolist() == [20, 30]
    with pytest.raises(ValueError, match="overlap"):
        storage.plan_ranges([0, 5], [10, 20])
    assert storage.plan_ranges([], [])[0].size == 0


def test_read_ranges_from_memory_and_local(tmp_path: Path) -> None:
    data = bytes(range(256)) * 64
    local = tmp_path / "blob"
    local.write_bytes(data)
    fs = fsspec.filesystem("memory")
    url = f"memory:///vlkb-{uuid.uuid4().hex}/blob"
    fs.pipe(url, data)
    events: list[tuple[str, int]] = []
    observe.subscribe(lambda event, amount: events.append((event, amount)))
    starts, ends = [3, 100, 2000, 2010], [50, 300, 2005, 4000]
    expected = b"".join(data[a:b] for a, b in zip(starts, ends, strict=True))
    try:
        assert storage.read_ranges(url, starts, ends) == expected
        assert storage.read_ranges(str(local), starts, ends) == expected
    finally:
        fs.rm(url)
    wanted = sum(b - a for a, b in zip(starts, ends, strict=True))
    remote, local_read = events[-4:-2], events[-2:]
    assert remote[1] == local_read[1] == ("storage_wanted", wanted)
    assert remote[0][0] == "storage_fetched" and wanted <= remote[0][1] <= 1.2 * wanted
