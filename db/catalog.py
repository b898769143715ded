"""Read-only queries on the knowledge base used outside ADQL (landing page, checks)."""

from __future__ import annotations

from psycopg import AsyncConnection
from psycopg.rows import dict_row

__all__ = ["list_surveys"]


async def list_surveys(conn: AsyncConnection, include_private: bool = False) -> list[dict]:
    """Surveys with their dataset counts; public ones only unless ``include_private``."""
    where = "" if include_private else "WHERE policy = 'PUBLIC'"
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT name, species, transition, description, dataset_count FROM datasets.surveys "
            f"{where} ORDER BY name, species, transition"
        )
        return await cur.fetchall()
