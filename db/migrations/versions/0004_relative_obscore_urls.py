"""ObsCore URLs stored relative to the service: ``access_url`` and ``preview`` lose their base URL.

Until now ingest wrote the public base URL into ``ivoa.obscore`` (``https://host/datalink/links?ID=...``),
so moving the service to another host name meant ingesting again. Rows now store
``datalink/links?ID=...`` and ``datalink/preview/<key>``, and answers prefix the public base URL
of the moment (``vlkb_public_url``, db/sql/adql_functions.sql). This rewrites the rows written
the old way: whatever precedes ``/datalink/links?`` or ``/datalink/preview/`` in an absolute URL
is the old base and goes. Other absolute values (a URL an operator set by hand) are left alone,
and are published as they are.

``ivoa.obscore`` is a published table, made by ``db/ddl.py`` after Alembic runs: on a fresh
database it does not exist yet here, and there is nothing to rewrite.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

import os

from alembic import op
from sqlalchemy import text

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

#: an absolute URL: a scheme, then ':' (RFC 3986 section 3.1)
_ABSOLUTE = "^[A-Za-z][A-Za-z0-9+.-]*:"
_MARKS = (("access_url", "/datalink/links?"), ("preview", "/datalink/preview/"))


def _obscore_exists() -> bool:
    return op.get_bind().execute(text("SELECT to_regclass('ivoa.obscore') IS NOT NULL")).scalar_one()


def upgrade() -> None:
    if not _obscore_exists():
        return
    for column, mark in _MARKS:
        # strpos finds the first occurrence: the base comes first, and the quoted ID or key that
        # follows cannot hold the mark ('?' is quoted in it)
        op.execute(text(
            f"UPDATE ivoa.obscore SET {column} = substr({column}, strpos({column}, :mark) + 1)"
            f" WHERE {column} ~ :absolute AND strpos({column}, :mark) > 0"
        ).bindparams(mark=mark, absolute=_ABSOLUTE))


def downgrade() -> None:
    """Write absolute URLs again, with the base URL in VLKB_BASE_URL (an older vlkb publishes them as stored)."""
    if not _obscore_exists():
        return
    base = os.environ.get("VLKB_BASE_URL", "").rstrip("/")
    if not base:
        raise RuntimeError("downgrading below 0004 writes absolute URLs into ivoa.obscore: set VLKB_BASE_URL")
    for column, _ in _MARKS:
        op.execute(text(
            f"UPDATE ivoa.obscore SET {column} = :base || '/' || {column}"
            f" WHERE {column} IS NOT NULL AND {column} !~ :absolute"
        ).bindparams(base=base, absolute=_ABSOLUTE))
