"""UWS jobs: a counter of runs (how many times a worker claimed the job) and a claim index.

``runs`` proves exactly-once execution: every claim increments it, so a job claimed twice
(a redelivered broker message, two workers racing) would show ``runs = 2``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE vlkb.jobs ADD COLUMN IF NOT EXISTS runs integer NOT NULL DEFAULT 0")
    # the claim query: oldest QUEUED job of some kinds
    op.execute("CREATE INDEX IF NOT EXISTS jobs_queued_idx ON vlkb.jobs (creation_time) WHERE phase = 'QUEUED'")


def downgrade() -> None:
    op.execute("DROP INDEX vlkb.jobs_queued_idx")
    op.execute("ALTER TABLE vlkb.jobs DROP COLUMN runs")
