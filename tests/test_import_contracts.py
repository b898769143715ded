"""The layers of docs/code-map.md hold: ``lint-imports`` (import-linter) on the contracts in
pyproject.toml, and the check itself fails when a wrong import is added (a test of the test)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = str(Path(sys.executable).parent / "lint-imports")
PACKAGES = ("app", "demo", "vo", "db", "schemas")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([LINT, "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_the_code_keeps_its_import_contracts() -> None:
    res = _lint(ROOT)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "4 kept, 0 broken" in res.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("app/routers/sia.py", "import db.query", "routers reach data through vo"),
    ("vo/tap.py", "import app.settings", "layers"),
    ("db/jobs.py", "import vo.errors", "layers"),
    ("vo/votable/text.py", "import db.query", "no database driver in vo.votable"),
    ("vo/sia.py", "import demo.surveys", "layers"),
])
def test_a_wrong_import_breaks_its_contract(tmp_path: Path, module: str, line: str, contract: str) -> None:
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{line}  # deliberately wrong\n")
    res = _lint(tmp_path)
    assert res.returncode != 0
    broken = [ln for ln in res.stdout.splitlines() if ln.strip().endswith("BROKEN")]
    assert any(contract in ln for ln in broken) or contract in res.stdout.split("Broken contracts")[-1], res.stdout
