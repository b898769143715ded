"""STILTS taplint, the referee: every stage implemented so far reports no errors and no failures.

Stages: metadata (TMV TME TMS TMC), capabilities (CPV CAP), availability (AVV), sync queries
(QGE QPO), async queries and UWS (QAS UWS), result metadata (MDQ), ObsCore (OBS), examples
(EXA) and table uploads (UPL). No report is accepted by decision any more: uploads by URL
are declared (upload-http, upload-https) and served through the guarded fetch
(architecture decision 11). The warnings left are in the issue notes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time

import pytest

from tests.auth_proxy import TokenProxy

STAGES = "TMV TME TMS TMC CPV CAP AVV QGE QPO QAS UWS MDQ OBS EXA UPL"
#: reports accepted by decision (see the module docstring): code prefix and a text it must carry
EXPECTED: dict[str, str] = {}


def expected(line: str) -> bool:
    """Whether ``line`` is a report accepted by decision."""
    return any(line.startswith(code) and text in line for code, text in EXPECTED.items())


def problems(out: str) -> list[str]:
    """The error and failure lines of a taplint report, less those accepted by decision."""
    return [line for line in out.splitlines() if re.match(r"^[EF]-[A-Z]{3}-", line) and not expected(line)]


def run_taplint(url: str, stages: str) -> str:
    stilts = shutil.which("stilts")
    if stilts is None:
        pytest.fail("stilts is not installed: run `make setup`")
    proc = subprocess.run(
        [stilts, "taplint", f"tapurl={url}", f"stages={stages}", "report=EWF", "maxrepeat=3"],
        capture_output=True, text=True, timeout=600,
    )
    return proc.stdout + proc.stderr


def test_taplint_foundation_stages_clean(server) -> None:
    out = run_taplint(server.url + "/tap", STAGES)
    found = problems(out)
    assert not found, "taplint reported:\n" + "\n".join(found)
    # the summary proves every stage actually ran
    for stage in STAGES.split():
        assert re.search(rf"Section {stage}:", out), f"stage {stage} did not run:\n{out[-2000:]}"


def test_taplint_clean_with_a_token(auth_server, issuer) -> None:
    # the same referee, as a member of the restricted survey's group sees the service
    proxy = TokenProxy(auth_server.url, issuer.token("alice", ["survey-team"], exp=int(time.time()) + 3600))
    try:
        out = run_taplint(proxy.url + "/tap", STAGES)
    finally:
        proxy.close()
    found = problems(out)
    assert not found, "taplint reported:\n" + "\n".join(found)
    for stage in STAGES.split():
        assert re.search(rf"Section {stage}:", out), f"stage {stage} did not run:\n{out[-2000:]}"
