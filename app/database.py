"""Where the database is: the external URL, or the embedded cluster's socket URL."""

from __future__ import annotations

from app.settings import Settings
from db.cluster import EmbeddedCluster

__all__ = ["cluster_for", "database_url"]


def cluster_for(settings: Settings) -> EmbeddedCluster:
    """The embedded cluster described by ``settings``."""
    return EmbeddedCluster(home=settings.home, bindir=settings.pg_bindir, port=settings.db_port)


def database_url(settings: Settings) -> str:
    """libpq URL of the service database."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    return cluster_for(settings).url()
