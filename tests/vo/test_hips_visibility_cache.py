"""The HiPS visibility cache: per set of groups, kept for its TTL, never answering for other groups."""

from __future__ import annotations

import asyncio
from pathlib import Path

from psycopg_pool import AsyncConnectionPool

from vo.caller import ANONYMOUS, Caller
from vo.hips import VisibilityCache

PUBLIC, PRIVATE = "hi-gal-70um", "meerkat-private-1284mhz"


def _root(tmp_path: Path) -> Path:
    for slug in (PUBLIC, PRIVATE):
        (tmp_path / slug).mkdir()
        (tmp_path / slug / "properties").write_text("hips_order = 3\n")
    return tmp_path


def test_answers_are_kept_per_groups_for_the_ttl(database, tmp_path) -> None:
    root = _root(tmp_path)
    member = Caller("m", ("survey-team",))

    async def run() -> tuple[list[str], ...]:
        async with AsyncConnectionPool(database.url, min_size=1, max_size=2, open=False) as pool:
            kept, fresh = VisibilityCache(ttl=3600), VisibilityCache(ttl=0)
            first = await kept.visible(pool, ANONYMOUS, root)
            inside = await kept.visible(pool, member, root)
            # a change the cache cannot see (here: the public HiPS removed) shows only without it
            (root / PUBLIC / "properties").unlink()
            return first, inside, await kept.visible(pool, ANONYMOUS, root), await fresh.visible(pool, ANONYMOUS, root)

    first, inside, cached, looked_up = asyncio.run(run())
    assert PUBLIC in first and PRIVATE not in first
    assert PRIVATE in inside  # another key: the member's groups
    assert cached == first
    assert PUBLIC not in looked_up and PRIVATE not in looked_up
