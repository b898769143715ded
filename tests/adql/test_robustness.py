"""Whatever the text, translate() returns or raises UsageError: no sqlglot or Python error escapes."""

from __future__ import annotations

import contextlib
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.adql.tables import corpus_catalog
from vo.adql import translate
from vo.errors import UsageError

CATALOG = corpus_catalog()
QUERIES = [e["adql"] for e in yaml.safe_load((Path(__file__).parent / "corpus.yaml").read_text(encoding="utf-8"))]
TOKENS = [
    "SELECT", "TOP", "5", "DISTINCT", "*", "FROM", "compactsources.band70um", "AS", "a", "WHERE", "glon", "glat",
    "pos_gal", "a.glon", ">", "=", "1", "0.5", "'x'", "(", ")", ",", "AND", "OR", "NOT", "CONTAINS", "POINT",
    "CIRCLE", "'GALACTIC'", "ORDER", "BY", "GROUP", "HAVING", "COUNT", "UNION", "JOIN", "ON", "USING", "IN",
    "EXISTS", "CAST", "INTEGER", "CASE", "WHEN", "THEN", "END", "NULL", "IS", "||", "-", "/", ";", "--", "\n",
    '"glon"', "OFFSET", "WITH", "IN_UNIT", "'deg'", "BETWEEN", "LIKE", "ILIKE", "DISTANCE", "AREA", "BOX",
]


def _check(text: str) -> None:
    # anything but UsageError fails the test
    with contextlib.suppress(UsageError):
        translate(text, CATALOG, maxrec=10)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=25))
def test_token_soup(tokens: list[str]) -> None:
    _check(" ".join(tokens))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(QUERIES), st.integers(min_value=0, max_value=400), st.integers(min_value=1, max_value=8),
       st.text(max_size=3))
def test_corpus_mutations(query: str, at: int, cut: int, insert: str) -> None:
    at = at % (len(query) + 1)
    _check(query[:at] + insert + query[at + cut:])
