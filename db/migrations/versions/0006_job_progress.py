"""Jobs carry a progress line (``n of N tiles``) that their runner updates while they execute.

UWS 1.1 has no progress element; the job document shows it in ``uws:jobInfo`` (vo/uws/xml.py).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE vlkb.jobs ADD COLUMN IF NOT EXISTS progress text")


def downgrade() -> None:
    op.execute("ALTER TABLE vlkb.jobs DROP COLUMN IF EXISTS progress")
