"""Persistent user tables (issue 17 part 2): the registry of user schemas and user tables.

``vlkb.user_schemas`` gives each ``user_<name>`` schema to one user, so two identities whose
names sanitise alike can never share one. ``vlkb.user_tables`` holds one row per user table:
its owner, the groups it is shared with read-only, its declaration (the ``schemas.Table`` JSON
that ADQL, VOSI and TAP_SCHEMA are built from) and its size (rows, bytes) for the quota.

Who may read a user table is decided by row-level security on this registry
(``db/sql/access.sql``, ``vlkb_may_read_user_table``), applied by :mod:`db.usertables` after the
DDL step; the user tables' own policies and TAP_SCHEMA's defer to it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # IF NOT EXISTS: a database whose recorded revision was set back (tests replaying 0004) keeps its tables
    op.execute("""
        CREATE TABLE IF NOT EXISTS vlkb.user_schemas (
            schema_name text PRIMARY KEY,
            owner text NOT NULL UNIQUE,
            created timestamptz NOT NULL DEFAULT now()
        )""")
    op.execute("""
        CREATE TABLE IF NOT EXISTS vlkb.user_tables (
            schema_name text NOT NULL REFERENCES vlkb.user_schemas (schema_name),
            table_name text NOT NULL,
            owner text NOT NULL,
            read_groups text[] NOT NULL DEFAULT '{}',
            decl jsonb NOT NULL,
            nrows bigint NOT NULL DEFAULT 0,
            nbytes bigint NOT NULL DEFAULT 0,
            created timestamptz NOT NULL DEFAULT now(),
            updated timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (schema_name, table_name)
        )""")
    op.execute("CREATE INDEX IF NOT EXISTS user_tables_owner ON vlkb.user_tables (owner)")


def downgrade() -> None:
    op.execute("DROP TABLE vlkb.user_tables")
    op.execute("DROP TABLE vlkb.user_schemas")
