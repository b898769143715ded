"""A job's ``SAVE_AS`` quota: the one kept with the job when it was accepted, else the runner's own."""

from __future__ import annotations

from pathlib import Path

from vo.caller import Caller
from vo.jobs.save_as import SaveAs, terms
from vo.usertables import Limits
from vo.uws.context import RunContext
from vo.uws.results import ResultStore

ACCEPTED = Limits(max_rows=3, max_bytes=1000, max_columns=5)
RUNNER = Limits(max_rows=10**6, max_bytes=10**9, max_columns=500)
PARAMS = {"SAVE_AS": ["user_termsowner.t"]}


def _ctx(database, tmp_path: Path, kept: dict) -> RunContext:
    return RunContext("terms-job", database.url, ResultStore(tmp_path), timeout=30, caller=Caller("termsowner"),
                      terms=kept)


def test_the_quota_kept_with_the_job_wins(database, tmp_path: Path) -> None:
    target = SaveAs.at_start(PARAMS, _ctx(database, tmp_path, terms(ACCEPTED)), RUNNER)
    assert target is not None and target.limits == ACCEPTED


def test_a_job_accepted_without_terms_uses_the_runners_quota(database, tmp_path: Path) -> None:
    target = SaveAs.at_start(PARAMS, _ctx(database, tmp_path, {}), RUNNER)
    assert target is not None and target.limits == RUNNER



def test_a_bound_the_terms_do_not_name_is_the_runners(database, tmp_path: Path) -> None:
    """Terms kept by another version, without every bound: the others are the runner's own."""
    kept = {"user_tables": {"max_rows": 3}}
    target = SaveAs.at_start(PARAMS, _ctx(database, tmp_path, kept), RUNNER)
    assert target is not None
    assert target.limits == Limits(max_rows=3, max_bytes=RUNNER.max_bytes, max_columns=RUNNER.max_columns)
