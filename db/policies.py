"""Survey access policies: who may read each survey (``vlkb.survey_policies``). SQL only.

A survey is public when its group list is empty or it has no row, else readable by members
of any listed group. Every reader (row-level security through ``vlkb_hidden_surveys()``,
``db.datasets`` lookups) reads this table at query time, so a change applies at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import class_row

__all__ = ["SurveyPolicy", "list_policies", "set_policy"]


@dataclass(frozen=True)
class SurveyPolicy:
    """One survey's policy and how many datasets it covers."""

    survey: str
    groups: list[str]
    updated_at: datetime | None
    datasets: int

    @property
    def public(self) -> bool:
        return not self.groups


_LIST = """
SELECT s.survey, coalesce(p.groups, '{}') AS groups, p.updated_at,
       (SELECT count(*) FROM ivoa.obscore o WHERE o.obs_collection = s.survey)::int AS datasets
FROM (SELECT survey FROM vlkb.survey_policies
      UNION SELECT DISTINCT obs_collection FROM ivoa.obscore WHERE obs_collection IS NOT NULL) s(survey)
LEFT JOIN vlkb.survey_policies p ON p.survey = s.survey
ORDER BY s.survey
"""


def list_policies(conn: psycopg.Connection) -> list[SurveyPolicy]:
    """Every survey with a policy or with datasets, and its policy."""
    with conn.cursor(row_factory=class_row(SurveyPolicy)) as cur:
        cur.execute(_LIST)
        return cur.fetchall()


def set_policy(conn: psycopg.Connection, survey: str, groups: Sequence[str]) -> SurveyPolicy:
    """Make ``survey`` readable by ``groups`` (empty: public), in one transaction; returns the new policy.

    The survey need not have datasets yet: restricting it before its first ingest keeps it
    from ever being public. ``datasets.surveys.policy`` (published) follows.
    """
    clean = sorted({g.strip() for g in groups if g.strip()})
    with conn.transaction():
        conn.execute(
            "INSERT INTO vlkb.survey_policies (survey, groups) VALUES (%s, %s) "
            "ON CONFLICT (survey) DO UPDATE SET groups = EXCLUDED.groups, updated_at = now()",
            (survey, clean),
        )
        conn.execute("UPDATE datasets.surveys SET policy = %s WHERE name = %s",
                     ("PRIVATE" if clean else "PUBLIC", survey))
    found = [p for p in list_policies(conn) if p.survey == survey]
    return found[0]
