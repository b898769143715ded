"""The ``table_update`` job (``POST /tap/table-update``, CADC YouCat's shape, which pyvo's
``TAPService.create_index`` drives): add an index to a user table, or set the groups it is shared with.

Pure: no HTTP and no job SQL. The table is looked up for the job's owner (``ctx.caller``)
through the access rule of their session, so a table they may not read is "does not exist",
and only its owner may change it (:func:`vo.usertables.update_blocking`). An index is built in
the job, not in the request, since it may take a while on a large table.
"""

from __future__ import annotations

from collections.abc import Mapping

from db.jobs import ResultRow
from vo.usertables import TableUpdate, update_blocking
from vo.uws.context import RunContext

__all__ = ["run_table_update"]


def run_table_update(params: Mapping[str, list[str]], ctx: RunContext) -> list[ResultRow]:
    """Apply the job's TABLE + INDEX (``col``, or ``lon,lat``: spatial) / READ_GROUPS; no result document."""
    upd = TableUpdate.from_params(dict(params))
    with ctx.connect() as conn:
        update_blocking(conn, ctx.caller, upd)
    ctx.check()
    return []
