"""TAP on the ViaLactea client's base: the standard query, its TSV made whitespace-split safe.

The same translation and runner as ``/tap/sync`` (:func:`vo.tap.run_sync`); a TSV answer over
catalogue tables only, or over ``TAP_SCHEMA`` tables, is rewritten for the client
(:mod:`vo.vialactea.tsv`). Uploads and every other format pass through untouched.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from psycopg_pool import AsyncConnectionPool

from vo import tap
from vo.adql import Translation
from vo.caller import Caller
from vo.upload import UploadedTable
from vo.vialactea.tsv import catalogue_tsv, is_catalogue, is_tap_schema, tap_schema_tsv

__all__ = ["run_client_sync"]


def _client_tsv(chunks: AsyncIterator[bytes], translation: Translation) -> AsyncIterator[bytes]:
    if is_catalogue(translation.tables):
        return catalogue_tsv(chunks, translation.columns)
    if is_tap_schema(translation.tables):
        return tap_schema_tsv(chunks)
    return chunks


async def run_client_sync(pool: AsyncConnectionPool, q: tap.TapQuery, caller: Caller, *, timeout: float,
                          uploads: Sequence[UploadedTable] = (), base_url: str | None = None
                          ) -> AsyncIterator[bytes]:
    """:func:`vo.tap.run_sync`, with the client's TSV where it applies."""
    shape = _client_tsv if q.format.name == "tsv" and not uploads else None
    return await tap.run_sync(pool, q, caller, timeout=timeout, uploads=uploads, shape=shape, base_url=base_url)
