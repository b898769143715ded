"""Read-only queries on the knowledge base used outside ADQL (the landing page).

Each runs on a connection inside the caller's session (:mod:`db.session`), so row-level
security decides which surveys are listed.
"""

from __future__ import annotations

from psycopg import AsyncConnection
from psycopg.rows import dict_row

__all__ = ["list_surveys"]


async def list_surveys(conn: AsyncConnection) -> list[dict]:
    """The surveys the session's caller may read, with their dataset counts."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT name, species, transition, description, dataset_count FROM datasets.surveys "
            "ORDER BY name, species, transition"
        )
        return await cur.fetchall()
