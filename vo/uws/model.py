"""The UWS 1.1 job model: phases and the frozen records the service hands out."""

from __future__ import annotations

from enum import StrEnum

from db.jobs import JobRow, ResultRow

__all__ = ["ACTIVE", "TERMINAL", "Job", "JobResult", "Phase"]


class Phase(StrEnum):
    """UWS 1.1 section 2.1.3 execution phases."""

    PENDING = "PENDING"
    QUEUED = "QUEUED"
    EXECUTING = "EXECUTING"
    COMPLETED = "COMPLETED"
    ERROR = "ERROR"
    ABORTED = "ABORTED"
    UNKNOWN = "UNKNOWN"
    HELD = "HELD"
    SUSPENDED = "SUSPENDED"
    ARCHIVED = "ARCHIVED"


#: phases WAIT blocks in (UWS 1.1 section 2.2.1.1)
ACTIVE = (Phase.PENDING, Phase.QUEUED, Phase.EXECUTING)
#: phases a job never leaves (except by deletion)
TERMINAL = (Phase.COMPLETED, Phase.ERROR, Phase.ABORTED, Phase.ARCHIVED)

Job = JobRow
JobResult = ResultRow
