"""The pgSphere install check and the one-line repair Debian's package needs.

Debian 12's ``postgresql-15-pgsphere`` ships extension 1.2.0, whose install script ends with
a compatibility block for old DaCHS releases: two legacy ``@`` operators on ``smoc`` that
declare ``COMMUTATOR = '@>'`` and ``NEGATOR = '!<@'``. PostgreSQL 15.20 (and other current
minor releases) refuses them, because ``@>`` on ``smoc`` already has ``<@`` as its commutator,
so ``CREATE EXTENSION pg_sphere`` fails with "commutator operator @> is already the commutator
of operator <@". Dropping those two clauses from that block (and nowhere else) leaves two
plain operators that nothing in vlkb uses, and the extension installs. The repair is
idempotent: a patched file is left alone.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PgSphereScript", "find_script"]

_MARKER = "backwards-compatible operators for GAVO DaCHS"
_BAD_CLAUSE = re.compile(r"^\s*(COMMUTATOR\s*=\s*'@>'|NEGATOR\s*=\s*'!<@')\s*,\s*\n", re.MULTILINE)
_BLOCK_END = re.compile(r"^-- debugging|^CREATE FUNCTION", re.MULTILINE)


@dataclass(frozen=True)
class PgSphereScript:
    """The installed ``pg_sphere--<version>.sql`` of one PostgreSQL installation."""

    path: Path

    def _block(self, text: str) -> tuple[int, int] | None:
        start = text.find(_MARKER)
        if start < 0:
            return None
        end_match = _BLOCK_END.search(text, start)
        return start, (end_match.start() if end_match else len(text))

    def needs_repair(self) -> bool:
        """True when the DaCHS block still carries the clauses PostgreSQL rejects."""
        text = self.path.read_text(encoding="utf-8")
        block = self._block(text)
        return block is not None and bool(_BAD_CLAUSE.search(text, *block))

    def repair(self) -> bool:
        """Drop the two rejected clauses from the DaCHS block. Returns True if the file changed."""
        text = self.path.read_text(encoding="utf-8")
        block = self._block(text)
        if block is None:
            return False
        start, end = block
        fixed = _BAD_CLAUSE.sub("", text[start:end])
        if fixed == text[start:end]:
            return False
        backup = self.path.with_name(self.path.name + ".orig")
        if not backup.exists():
            shutil.copy2(self.path, backup)
        self.path.write_text(text[:start] + fixed + text[end:], encoding="utf-8")
        return True


def find_script(bindir: Path | None) -> PgSphereScript | None:
    """The default-version pgSphere install script of the PostgreSQL whose binaries are in ``bindir``.

    Returns None when pgSphere is not installed there.
    """
    pg_config = (bindir / "pg_config") if bindir else Path(shutil.which("pg_config") or "pg_config")
    try:
        sharedir = subprocess.run(
            [str(pg_config), "--sharedir"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    ext = Path(sharedir) / "extension"
    control = ext / "pg_sphere.control"
    if not control.exists():
        return None
    version = None
    for line in control.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\s*default_version\s*=\s*'([^']+)'", line)
        if m:
            version = m.group(1)
    script = ext / f"pg_sphere--{version}.sql"
    return PgSphereScript(script) if script.exists() else None


if __name__ == "__main__":
    # `python3 db/pgsphere.py` (run by `make setup` as root, before any venv exists): repair the
    # installed script of every PostgreSQL found, with the standard library only.
    import sys

    for bindir in sorted(Path("/usr/lib/postgresql").glob("*/bin")):
        found = find_script(bindir)
        if found is not None and found.needs_repair():
            found.repair()
            print(f"repaired {found.path} (legacy DaCHS smoc operators, see db/pgsphere.py)")
    sys.exit(0)
