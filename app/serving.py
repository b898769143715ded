"""Serving with several processes: how many, and the app each one builds.

``vlkb serve`` runs ``VLKB_WORKERS`` uvicorn worker processes (issue 16). One Python process
serves one request's Python work at a time (the GIL): ADQL translation, result encoding between
database waits, FITS headers of cutouts. The processes share the listening socket; each builds
its own app from the environment (:func:`app_from_environment`), with its own database pool,
caches and job executor. What must hold across them holds in PostgreSQL or on disk:

- jobs are claimed by compare-and-set and reaped by heartbeat and process id
  (``vo/uws/worker.py``), so a job runs once whichever process took it, and a process that
  stops leaves its jobs to the others' reapers;
- the Prometheus values live in ``PROMETHEUS_MULTIPROC_DIR`` (``app/metrics.py``), set by the
  CLI before any process imports prometheus_client, so a scrape of any process sums them all; a
  process that stops marks itself dead there, so live gauges count the living only;
- caches (cutout headers and memory maps, the MOC cache) are per process and bounded.

Each process has up to ``VLKB_DB_POOL_MAX`` connections and runs up to ``VLKB_LOCAL_CONCURRENCY``
jobs: the database sees the sums.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from app.settings import Settings

__all__ = ["app_from_environment", "worker_count"]


def _cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_count(settings: Settings) -> int:
    """HTTP worker processes: ``VLKB_WORKERS``, else one per core the process may use."""
    return settings.workers or _cores()


def _die_with_parent() -> None:
    """Have the kernel send this worker SIGTERM when the supervising ``vlkb serve`` dies (Linux
    ``PR_SET_PDEATHSIG``): a supervisor killed with SIGKILL would otherwise leave its workers
    serving on, holding the port and their jobs. Elsewhere, a no-op."""
    import ctypes
    import ctypes.util
    import signal

    name = ctypes.util.find_library("c")
    if not name or os.uname().sysname != "Linux":
        return
    try:
        ctypes.CDLL(name, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return


def app_from_environment() -> FastAPI:
    """The app of one worker process, built from the ``VLKB_*`` environment (uvicorn's factory)."""
    from app.main import create_app

    _die_with_parent()
    return create_app(Settings())
