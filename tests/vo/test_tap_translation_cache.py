"""The per-process cache of ADQL translations (vo/tap.py, issue 16): keyed by the query text and
MAXREC, the same answer as a fresh translation, never used for uploads or a caller's own tables."""

from __future__ import annotations

import pytest

from vo.adql import translate
from vo.errors import UsageError
from vo.tap import TapQuery, _translate_cached, plan_query, published_catalog, translate_published

QUERY = "SELECT TOP 5 designation, glon FROM compactsources.band70um WHERE glon > 10"


def _q(query: str, maxrec: int = 100) -> TapQuery:
    return TapQuery.from_params({"lang": ["ADQL"], "query": [query], "maxrec": [str(maxrec)]},
                                maxrec_default=100, maxrec_limit=1000)


def test_cached_translation_is_the_fresh_one() -> None:
    _translate_cached.cache_clear()
    fresh = translate(QUERY, published_catalog(), maxrec=100)
    first = translate_published(QUERY, 100)
    again = translate_published(QUERY, 100)
    assert again is first  # from the cache
    assert (first.sql, first.columns, first.tables) == (fresh.sql, fresh.columns, fresh.tables)
    assert _translate_cached.cache_info().hits == 1


def test_maxrec_is_part_of_the_key() -> None:
    _translate_cached.cache_clear()
    a = translate_published("SELECT designation FROM compactsources.band70um", 10)
    b = translate_published("SELECT designation FROM compactsources.band70um", 20)
    assert "LIMIT 11" in a.sql and "LIMIT 21" in b.sql


def test_errors_are_raised_each_time_and_not_kept() -> None:
    _translate_cached.cache_clear()
    for _ in range(2):
        with pytest.raises(UsageError):
            translate_published("SELECT nope FROM compactsources.band70um", 10)
    assert _translate_cached.cache_info().currsize == 0


def test_plan_query_uses_the_cache_only_for_the_published_catalogue() -> None:
    _translate_cached.cache_clear()
    plan_query(_q(QUERY))
    plan_query(_q(QUERY))
    assert _translate_cached.cache_info().hits == 1
    long = QUERY + " " * 9000  # longer than what is kept: translated afresh, not stored
    plan_query(_q(long))
    assert _translate_cached.cache_info().currsize == 1


def test_the_cache_is_bounded() -> None:
    assert 0 < (_translate_cached.cache_info().maxsize or 0) <= 4096
