"""Jobs remember their owner's groups, so a job run later (by any worker) reads what its owner may.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # IF NOT EXISTS: databases made by a development build that had this column under 0002
    op.execute("ALTER TABLE vlkb.jobs ADD COLUMN IF NOT EXISTS owner_groups text[] NOT NULL DEFAULT '{}'")


def downgrade() -> None:
    op.execute("ALTER TABLE vlkb.jobs DROP COLUMN owner_groups")
