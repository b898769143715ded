"""Parts of a job: units of one job's work that any process running jobs may claim (vo/uws/parts.py).

A runner fans its work out (``RunContext.fan_out``): each part is a row here, claimed by
compare-and-set like a job (only parts of EXECUTING jobs), its output written to the job's results
store under a hidden name (``output``), read back and removed by the job's own runner. ``payload``
is a pickle written only by our own code (the runner of the job), never by a client. ``runs``
counts claims: a part whose process died is queued again (parts are idempotent, unlike jobs).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS vlkb.job_parts (
            job_id text NOT NULL REFERENCES vlkb.jobs(job_id) ON DELETE CASCADE,
            part integer NOT NULL,
            name text NOT NULL,
            payload bytea NOT NULL,
            state text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'done', 'error')),
            worker text,
            heartbeat timestamptz,
            runs integer NOT NULL DEFAULT 0,
            error_code text,
            error text,
            output text,
            PRIMARY KEY (job_id, part)
        )
        """
    )
    # the claim query: queued parts, oldest job first
    op.execute("CREATE INDEX IF NOT EXISTS job_parts_queued_idx ON vlkb.job_parts (job_id, part)"
               " WHERE state = 'queued'")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS vlkb.job_parts")
