"""Alembic environment for vlkb's internal schema ``vlkb``.

Run programmatically by :func:`db.migrate.upgrade`, which hands over an open SQLAlchemy
connection in ``config.attributes["connection"]``; there is no alembic.ini to keep in sync.
"""

from alembic import context

connection = context.config.attributes["connection"]
connection.exec_driver_sql("CREATE SCHEMA IF NOT EXISTS vlkb")
context.configure(connection=connection, version_table_schema="vlkb", transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
