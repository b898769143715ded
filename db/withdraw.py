"""Withdrawing published datasets: their ``ivoa.obscore`` and ``vlkb.datasets`` rows, and the
``datasets.surveys`` rows they leave empty.

SQL only, in the caller's transaction, so a withdrawal (``vlkb ingest remove``, or a re-ingest
that gives a file a new DID) lands whole or not at all. The survey's access policy
(``vlkb.survey_policies``) is kept: re-publishing a restricted survey must not open it. Files
and cached previews live outside the database; the caller removes previews after the commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import Connection

__all__ = ["Published", "find_published", "withdraw"]


@dataclass(frozen=True)
class Published:
    """One published dataset, as a withdrawal names it."""

    did: str
    survey: str
    obs_title: str | None
    path: str


_SELECT = """
SELECT d.publisher_did, d.survey, o.obs_title, d.path
FROM vlkb.datasets d LEFT JOIN ivoa.obscore o ON o.obs_publisher_did = d.publisher_did
"""


def find_published(conn: Connection, *, ids: Sequence[str] = (), paths: Sequence[str] = (),
                   surveys: Sequence[str] = (), obs_title: str | None = None) -> list[Published]:
    """Datasets whose DID is in ``ids``, whose stored path is in ``paths``, or of a survey in
    ``surveys`` (narrowed to ``obs_title``, "species | transition", when given); by DID."""
    rows = conn.execute(
        _SELECT + "WHERE d.publisher_did = ANY(%(ids)s) OR d.path = ANY(%(paths)s) "
        "OR (d.survey = ANY(%(surveys)s) AND (%(title)s::text IS NULL OR o.obs_title = %(title)s)) "
        "ORDER BY d.publisher_did",
        {"ids": list(ids), "paths": list(paths), "surveys": list(surveys), "title": obs_title},
    ).fetchall()
    return [Published(*row) for row in rows]


def withdraw(conn: Connection, dids: Sequence[str]) -> int:
    """Delete the datasets ``dids`` and refresh (or drop, when empty) their survey rows; how many went."""
    if not dids:
        return 0
    titles = conn.execute(
        "SELECT DISTINCT obs_collection, obs_title FROM ivoa.obscore WHERE obs_publisher_did = ANY(%s)",
        (list(dids),)).fetchall()
    conn.execute("DELETE FROM ivoa.obscore WHERE obs_publisher_did = ANY(%s)", (list(dids),))
    gone = conn.execute("DELETE FROM vlkb.datasets WHERE publisher_did = ANY(%s)", (list(dids),)).rowcount
    if titles:
        names, obs_titles = [t[0] for t in titles], [t[1] for t in titles]
        pairs = "(SELECT * FROM unnest(%(names)s::text[], %(titles)s::text[]) AS p(name, title))"
        params = {"names": names, "titles": obs_titles}
        conn.execute(
            f"UPDATE datasets.surveys s SET dataset_count = (SELECT count(*) FROM ivoa.obscore o "
            f"WHERE o.obs_collection = s.name AND o.obs_title = s.species || ' | ' || s.transition) "
            f"FROM {pairs} p WHERE s.name = p.name AND s.species || ' | ' || s.transition = p.title", params)
        conn.execute(
            f"DELETE FROM datasets.surveys s USING {pairs} p "
            "WHERE s.name = p.name AND s.species || ' | ' || s.transition = p.title AND s.dataset_count = 0",
            params)
    return gone
