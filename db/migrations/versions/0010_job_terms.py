"""Jobs keep the terms they were accepted under.

A job may run in any process that shares the database (another replica, a ``vlkb worker``), and
processes may be configured differently for a while (a rolling change of settings). What a job
was promised when it was accepted, such as the user-table quota its ``SAVE_AS`` is held to, is
stored with it, so the answer does not depend on which process claims the job. Jobs created
before this column (NULL) are held to the running process's settings, as before.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE vlkb.jobs ADD COLUMN IF NOT EXISTS terms jsonb")


def downgrade() -> None:
    op.execute("ALTER TABLE vlkb.jobs DROP COLUMN IF EXISTS terms")
