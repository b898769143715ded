"""Whether the process that claimed a job or a part still lives: worker ids and :func:`worker_dead`.

Shared by the reaper (``vo/uws/worker.py``: jobs and parts) and a job's runner waiting on its
parts (``vo/uws/parts.py``).
"""

from __future__ import annotations

import os
import secrets
import socket
from datetime import datetime, timedelta
from typing import Protocol

__all__ = ["HEARTBEAT", "STALE_BEATS", "new_worker_id", "pid_alive", "worker_dead"]

#: seconds between heartbeats (and watches) of a process running jobs
HEARTBEAT = 10.0
#: a job whose heartbeat is older than this many heartbeats is taken for dead
STALE_BEATS = 4


class Claimed(Protocol):
    """A claimed job or part: who claimed it, and when that process last said it was alive."""

    @property
    def worker(self) -> str | None: ...

    @property
    def heartbeat(self) -> datetime | None: ...


def new_worker_id() -> str:
    """``host:pid:random``: unique per process start, and tells the reaper where to look."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine is running (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_STALE = timedelta(seconds=STALE_BEATS * HEARTBEAT)


def worker_dead(job: Claimed, me: str, now: datetime, stale: timedelta = _STALE) -> bool:
    """Whether the process that claimed ``job`` (or a part) is gone: no worker, a stale heartbeat,
    or a process of this host that no longer runs (or is us, restarted under a new id)."""
    if not job.worker:
        return True
    if job.worker == me:
        return False
    if job.heartbeat is None or now - job.heartbeat > stale:
        return True
    host, _, rest = job.worker.partition(":")
    pid_text = rest.partition(":")[0]
    if host == socket.gethostname() and pid_text.isdigit():
        pid = int(pid_text)
        return pid == os.getpid() or not pid_alive(pid)
    return False
