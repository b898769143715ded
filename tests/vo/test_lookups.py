"""The recent-lookups cache of SODA cuts (vo/lookups.py): per caller, forgotten when the database
announces a change, fresh for its time to live at most, bounded."""

from __future__ import annotations

import asyncio
import time

import psycopg

from db.datasets import ACCESS_CHANNEL, access_announced
from db.policies import set_policy
from vo.caller import ANONYMOUS, Caller, Dataset
from vo.lookups import RecentLookups

ALICE = Caller("alice", ("team", "other"))


def _ds(did: str, path: str = "/data/cube.fits") -> Dataset:
    return Dataset(did, "Survey", path, None, "cube", None, None, None, None, None, None, None, None, None, None,
                   None, None)


def test_a_dataset_is_found_again_only_by_the_same_caller() -> None:
    recent = RecentLookups(ttl=60)
    recent.put(_ds("ivo://x/a"), ALICE, recent.generation)
    assert recent.get("ivo://x/a", ALICE) == _ds("ivo://x/a")
    # the same groups in another order are the same caller
    assert recent.get("ivo://x/a", Caller("alice", ("other", "team"))) == _ds("ivo://x/a")
    for other in (ANONYMOUS, Caller("bob", ALICE.groups), Caller("alice", ("team",)), Caller(None, ALICE.groups)):
        assert recent.get("ivo://x/a", other) is None, other
    assert recent.get("ivo://x/b", ALICE) is None


def test_an_answer_older_than_the_ttl_is_not_used() -> None:
    recent = RecentLookups(ttl=0.05)
    recent.put(_ds("ivo://x/a"), ALICE, recent.generation)
    assert recent.get("ivo://x/a", ALICE) is not None
    time.sleep(0.1)
    assert recent.get("ivo://x/a", ALICE) is None


def test_ttl_zero_keeps_nothing() -> None:
    recent = RecentLookups(ttl=0)
    recent.put(_ds("ivo://x/a"), ALICE, recent.generation)
    assert recent.get("ivo://x/a", ALICE) is None


def test_the_least_recently_used_go_first() -> None:
    recent = RecentLookups(ttl=60, max_entries=3)
    for name in "abc":
        recent.put(_ds(f"ivo://x/{name}"), ALICE, recent.generation)
    assert recent.get("ivo://x/a", ALICE) is not None  # a is now the most recently used
    recent.put(_ds("ivo://x/d"), ALICE, recent.generation)
    assert [n for n in "abcd" if recent.get(f"ivo://x/{n}", ALICE) is not None] == ["a", "c", "d"]


def test_a_lookup_under_way_when_everything_is_forgotten_is_not_kept() -> None:
    recent = RecentLookups(ttl=60)
    started = recent.generation
    recent.clear()  # a change heard while the lookup ran: it may have read the rows from before
    recent.put(_ds("ivo://x/a"), ALICE, started)
    assert recent.get("ivo://x/a", ALICE) is None


async def _until(check, timeout: float = 5.0) -> float:
    """Seconds until ``check()`` is true (AssertionError after ``timeout``)."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, "not within the timeout"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


def test_a_change_in_the_database_forgets_every_answer(database) -> None:
    """A policy set (what ``vlkb policy set`` runs), a dataset row changed: each empties the cache
    at once, long before the ttl; answers are kept only while the listener is connected."""

    async def main() -> None:
        recent = RecentLookups(ttl=600, conninfo=database.url)
        recent.put(_ds("ivo://x/a"), ALICE, recent.generation)
        assert recent.get("ivo://x/a", ALICE) is None  # not listening yet: nothing kept
        await recent.start()
        try:
            await _until(lambda: recent.listening)
            for change in (lambda c: set_policy(c, "no-such-survey-lookups", []),
                           lambda c: c.execute("UPDATE vlkb.datasets SET size = size WHERE false")):
                recent.put(_ds("ivo://x/a"), ALICE, recent.generation)
                assert recent.get("ivo://x/a", ALICE) is not None
                with psycopg.connect(database.url) as conn:
                    change(conn)
                assert await _until(lambda: recent.get("ivo://x/a", ALICE) is None) < 2
        finally:
            await recent.close()
            with psycopg.connect(database.url) as conn:
                conn.execute("DELETE FROM vlkb.survey_policies WHERE survey = 'no-such-survey-lookups'")

    asyncio.run(main())


def test_the_channel_is_the_one_the_triggers_announce_on(database) -> None:
    with psycopg.connect(database.url, autocommit=True) as conn:
        conn.execute(f"LISTEN {ACCESS_CHANNEL}")
        with psycopg.connect(database.url) as other:
            other.execute("UPDATE vlkb.survey_policies SET groups = groups WHERE false")
        note = next(conn.notifies(timeout=5, stop_after=1))
    assert note.payload == "vlkb.survey_policies"


def test_a_database_that_does_not_announce_changes_keeps_nothing(database) -> None:
    """Triggers missing (a database not migrated since they were added): no answer is kept."""

    async def main() -> None:
        async with await psycopg.AsyncConnection.connect(database.url) as conn:
            assert await access_announced(conn)
        with psycopg.connect(database.url, autocommit=True) as conn:
            conn.execute("ALTER TABLE vlkb.datasets DISABLE TRIGGER vlkb_access_changed")
        recent = RecentLookups(ttl=600, conninfo=database.url)
        try:
            async with await psycopg.AsyncConnection.connect(database.url) as conn:
                assert not await access_announced(conn)
            await recent.start()
            await asyncio.sleep(1.0)  # time to connect and find the trigger missing
            recent.put(_ds("ivo://x/a"), ALICE, recent.generation)
            assert not recent.listening and recent.get("ivo://x/a", ALICE) is None
        finally:
            await recent.close()
            with psycopg.connect(database.url, autocommit=True) as conn:
                conn.execute("ALTER TABLE vlkb.datasets ENABLE TRIGGER vlkb_access_changed")

    asyncio.run(main())
