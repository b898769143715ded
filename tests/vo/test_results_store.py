"""The results store on the default local directory and on other fsspec filesystems."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from vo.uws.results import ResultStore


def _stores(tmp_path: Path) -> list[ResultStore]:
    return [
        ResultStore(tmp_path / "plain"),
        ResultStore(f"file://{tmp_path}/url"),
        ResultStore(f"memory://vlkb-test-{secrets.token_hex(4)}"),
    ]


@pytest.mark.parametrize("which", [0, 1, 2], ids=["directory", "file-url", "memory"])
def test_write_read_delete(tmp_path: Path, which: int) -> None:
    store = _stores(tmp_path)[which]
    loc = store.location("job1", "result")
    with store.writer("job1", "result") as out:
        out.write(b"abc")
        # nothing under the final name while the result is being written
        assert not store.exists(loc)
        out.write(b"def" * 1000)
    assert store.exists(loc)
    assert store.size(loc) == 3003
    assert b"".join(store.read(loc, chunk=100)) == b"abc" + b"def" * 1000
    assert store.local == (which != 2)
    store.delete("job1")
    assert not store.exists(loc)
    store.delete("job1")  # deleting twice is fine


@pytest.mark.parametrize("which", [0, 2], ids=["directory", "memory"])
def test_failed_write_leaves_nothing(tmp_path: Path, which: int) -> None:
    store = _stores(tmp_path)[which]
    with pytest.raises(RuntimeError), store.writer("job2", "result") as out:
        out.write(b"partial")
        raise RuntimeError("query failed half way")
    assert not store.exists(store.location("job2", "result"))
    assert store.fs.find(f"{store.root}/job2") == []


@pytest.mark.parametrize("name", ["..", "a/b", "x.part", ""])
def test_unsafe_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError):
        ResultStore(tmp_path).location("job", name)
