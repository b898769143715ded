"""UWS 1.1 XML documents (job, job list, results, parameters, error), built with ``vo.xmlns``.

Each document validates against the UWS 1.1 schema (namespace ``http://www.ivoa.net/xml/UWS/v1.0``);
the tests check that with the XSD STILTS ships.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from lxml import etree

from vo.uws.model import Job, JobResult
from vo.xmlns import NS, E, tostring

__all__ = ["error_text", "isotime", "job_xml", "jobs_xml", "parameters_xml", "results_xml"]

_NSMAP = {"uws": NS["uws"], "xlink": NS["xlink"], "xsi": NS["xsi"]}
_NIL = {"xsi:nil": "true"}
#: the namespace of vlkb's own elements inside ``uws:jobInfo``
VLKB_NS = "ivo://vlkb/xml/jobinfo/v1"


def isotime(t: datetime) -> str:
    """ISO 8601 in UTC with a Z, as UWS examples show (section 2.2.2)."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _time(tag: str, t: datetime | None) -> etree._Element:
    return E(tag, isotime(t)) if t is not None else E(tag, attrib=_NIL)


def _parameters(job: Job) -> etree._Element:
    params = []
    for name, values in job.parameters.items():
        for value in values:
            params.append(E("uws:parameter", value, attrib={"id": name.lower()}))
    return E("uws:parameters", *params)


def _results(results: Sequence[JobResult], job_url: str) -> etree._Element:
    return E("uws:results", *(
        E("uws:result", attrib={
            "id": r.result_id, "xlink:type": "simple", "xlink:href": f"{job_url}/results/{r.result_id}",
            "size": None if r.size is None else str(r.size), "mime-type": r.mime_type,
        })
        for r in results
    ))


def _job_info(job: Job) -> etree._Element | None:
    """UWS 1.1 has no progress element; ``uws:jobInfo`` (section 2.2.1, any content) carries the
    runner's progress line as ``<vlkb:progress done="2" total="4">2 of 4 tiles</vlkb:progress>``
    (the attributes when the line starts ``n of N``)."""
    if job.progress is None:
        return None
    info = E("uws:jobInfo")
    progress = etree.SubElement(info, f"{{{VLKB_NS}}}progress", nsmap={"vlkb": VLKB_NS})
    progress.text = job.progress
    parts = job.progress.split()
    if len(parts) >= 3 and parts[1] == "of" and parts[0].isdigit() and parts[2].isdigit():
        progress.set("done", parts[0])
        progress.set("total", parts[2])
    return info


def _job(job: Job, results: Sequence[JobResult], job_url: str, nsmap: dict[str, str] | None) -> etree._Element:
    error = None
    if job.error_message is not None:
        error = E("uws:errorSummary", E("uws:message", job.error_message),
                  attrib={"type": job.error_type or "fatal", "hasDetail": "true"})
    return E(
        "uws:job",
        E("uws:jobId", job.job_id),
        E("uws:runId", job.run_id) if job.run_id is not None else None,
        E("uws:ownerId", job.owner) if job.owner is not None else E("uws:ownerId", attrib=_NIL),
        E("uws:phase", job.phase),
        _time("uws:quote", job.quote),
        E("uws:creationTime", isotime(job.creation_time)),
        _time("uws:startTime", job.start_time),
        _time("uws:endTime", job.end_time),
        E("uws:executionDuration", str(job.execution_duration)),
        _time("uws:destruction", job.destruction),
        _parameters(job),
        _results(results, job_url),
        error,
        _job_info(job),
        attrib={"version": "1.1"},
        nsmap=nsmap,
    )


def job_xml(job: Job, results: Sequence[JobResult], job_url: str) -> bytes:
    """The job resource (UWS 1.1 section 2.2.1.2)."""
    return tostring(_job(job, results, job_url, _NSMAP))


def jobs_xml(jobs: Sequence[Job], list_url: str) -> bytes:
    """The job list (UWS 1.1 section 2.2.1.1)."""
    refs = [
        E("uws:jobref",
          E("uws:phase", j.phase),
          E("uws:runId", j.run_id) if j.run_id is not None else None,
          E("uws:ownerId", j.owner) if j.owner is not None else E("uws:ownerId", attrib=_NIL),
          E("uws:creationTime", isotime(j.creation_time)),
          attrib={"id": j.job_id, "xlink:type": "simple", "xlink:href": f"{list_url}/{j.job_id}"})
        for j in jobs
    ]
    return tostring(E("uws:jobs", *refs, attrib={"version": "1.1"}, nsmap=_NSMAP))


def results_xml(results: Sequence[JobResult], job_url: str) -> bytes:
    root = _results(results, job_url)
    return tostring(E("uws:results", *root, nsmap=_NSMAP))


def parameters_xml(job: Job) -> bytes:
    return tostring(E("uws:parameters", *_parameters(job), nsmap=_NSMAP))


def error_text(job: Job) -> str:
    """The plain-text error of a job in ERROR (UWS 1.1 section 2.2.1.2: any format will do)."""
    return job.error_message or ""
