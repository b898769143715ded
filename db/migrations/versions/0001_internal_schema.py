"""Internal schema: pgSphere, survey access policies, dataset files, UWS jobs and results.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # In public, explicitly: the default search_path starts with "$user", and the embedded
    # cluster's user is called vlkb like this schema.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_sphere SCHEMA public")
    # A survey is public when its group list is empty, else readable by members of any listed group.
    op.execute(
        """
        CREATE TABLE vlkb.survey_policies (
            survey text PRIMARY KEY,
            groups text[] NOT NULL DEFAULT '{}',
            updated_at timestamptz NOT NULL DEFAULT now()
        )"""
    )
    # Where each published dataset's bytes live; never published (paths are internal).
    op.execute(
        """
        CREATE TABLE vlkb.datasets (
            publisher_did text PRIMARY KEY,
            survey text NOT NULL,
            path text NOT NULL,
            size bigint,
            ingested_at timestamptz NOT NULL DEFAULT now()
        )"""
    )
    op.execute("CREATE INDEX datasets_survey_idx ON vlkb.datasets (survey)")
    # UWS 1.1 jobs of every kind (TAP queries, SODA cutouts, merges); parameters as JSON.
    op.execute(
        """
        CREATE TABLE vlkb.jobs (
            job_id text PRIMARY KEY,
            kind text NOT NULL,
            owner text,
            run_id text,
            phase text NOT NULL DEFAULT 'PENDING' CHECK (phase IN
                ('PENDING','QUEUED','EXECUTING','COMPLETED','ERROR','ABORTED','UNKNOWN',
                 'HELD','SUSPENDED','ARCHIVED')),
            parameters jsonb NOT NULL DEFAULT '{}',
            creation_time timestamptz NOT NULL DEFAULT now(),
            start_time timestamptz,
            end_time timestamptz,
            execution_duration integer NOT NULL DEFAULT 0,
            destruction timestamptz,
            quote timestamptz,
            error_type text CHECK (error_type IN ('transient', 'fatal')),
            error_message text,
            error_code integer,
            worker text,
            heartbeat timestamptz
        )"""
    )
    op.execute("CREATE INDEX jobs_owner_idx ON vlkb.jobs (owner, creation_time)")
    op.execute("CREATE INDEX jobs_phase_idx ON vlkb.jobs (phase)")
    op.execute("CREATE INDEX jobs_destruction_idx ON vlkb.jobs (destruction)")
    op.execute(
        """
        CREATE TABLE vlkb.job_results (
            job_id text NOT NULL REFERENCES vlkb.jobs(job_id) ON DELETE CASCADE,
            result_id text NOT NULL,
            location text NOT NULL,
            mime_type text,
            size bigint,
            PRIMARY KEY (job_id, result_id)
        )"""
    )


def downgrade() -> None:
    op.execute("DROP TABLE vlkb.job_results")
    op.execute("DROP TABLE vlkb.jobs")
    op.execute("DROP TABLE vlkb.datasets")
    op.execute("DROP TABLE vlkb.survey_policies")
