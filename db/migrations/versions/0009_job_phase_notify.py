"""A job's change of phase is announced on the channel ``vlkb_job_phase`` (NOTIFY, payload: its id).

UWS ``WAIT`` (1.1 section 2.2.1.1) blocks until the job leaves its phase. Every path that moves a
job (the local executor, a ``vlkb worker``, ABORT, the reaper, deletion) is a row change here, so a
trigger announces them all at commit, and a waiting request wakes at once instead of polling the
row (``vo/uws/phase_watch.py``).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE OR REPLACE FUNCTION vlkb.job_phase_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' THEN
                PERFORM pg_notify('vlkb_job_phase', OLD.job_id);
            ELSE
                PERFORM pg_notify('vlkb_job_phase', NEW.job_id);
            END IF;
            RETURN NULL;
        END $$""")
    op.execute("DROP TRIGGER IF EXISTS job_phase_notify ON vlkb.jobs")
    op.execute("CREATE TRIGGER job_phase_notify AFTER UPDATE OF phase ON vlkb.jobs FOR EACH ROW"
               " WHEN (OLD.phase IS DISTINCT FROM NEW.phase) EXECUTE FUNCTION vlkb.job_phase_notify()")
    op.execute("DROP TRIGGER IF EXISTS job_gone_notify ON vlkb.jobs")
    op.execute("CREATE TRIGGER job_gone_notify AFTER DELETE ON vlkb.jobs FOR EACH ROW"
               " EXECUTE FUNCTION vlkb.job_phase_notify()")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS job_gone_notify ON vlkb.jobs")
    op.execute("DROP TRIGGER IF EXISTS job_phase_notify ON vlkb.jobs")
    op.execute("DROP FUNCTION IF EXISTS vlkb.job_phase_notify()")
