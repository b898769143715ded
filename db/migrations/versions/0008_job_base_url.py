"""Jobs keep the public base URL of the service they were created through.

A job's results may hold URLs (a TAP query of ``ivoa.obscore``: ``access_url``, ``preview``),
made from the public base URL when the result is written (issue 15 item 5). The job may run later
in another process or on another machine (``vlkb worker``); the URLs are those of the service the
job was submitted to, whichever process runs it. Jobs created before this column answer with the
running process's configured base, as before.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE vlkb.jobs ADD COLUMN IF NOT EXISTS base_url text")


def downgrade() -> None:
    op.execute("ALTER TABLE vlkb.jobs DROP COLUMN IF EXISTS base_url")
