"""The pgSphere repair: removes exactly the two rejected clauses, once, from the DaCHS block."""

from __future__ import annotations

from pathlib import Path

from db.pgsphere import PgSphereScript

SAMPLE = """\
CREATE OPERATOR <@ (
   LEFTARG    = smoc,
   RIGHTARG   = smoc,
   PROCEDURE  = smoc_subset_smoc,
   COMMUTATOR = '@>',
   NEGATOR    = '!<@',
   RESTRICT   = contsel,
   JOIN       = contjoinsel
);

-- a minimal set of backwards-compatible operators for GAVO DaCHS,
-- see http://soft.g-vo.org/dachs

CREATE OPERATOR @ (
   LEFTARG    = bigint,
   RIGHTARG   = smoc,
   PROCEDURE  = healpix_subset_smoc,
   COMMUTATOR = '@>',
   NEGATOR    = '!<@',
   RESTRICT   = contsel,
   JOIN       = contjoinsel
);

CREATE OPERATOR @ (
   LEFTARG    = spoint,
   RIGHTARG   = smoc,
   PROCEDURE  = spoint_subset_smoc,
   COMMUTATOR = '@>',
   NEGATOR    = '!<@',
   RESTRICT   = contsel,
   JOIN       = contjoinsel
);
-- debugging

CREATE FUNCTION smoc_info (smoc)
"""


def test_repair_touches_only_the_dachs_block(tmp_path: Path) -> None:
    path = tmp_path / "pg_sphere--1.2.0.sql"
    path.write_text(SAMPLE)
    script = PgSphereScript(path)
    assert script.needs_repair()
    assert script.repair() is True
    fixed = path.read_text()
    head, block = fixed.split("backwards-compatible", 1)
    # the genuine <@ operator keeps its commutator and negator
    assert "COMMUTATOR = '@>'" in head and "NEGATOR    = '!<@'" in head
    assert "COMMUTATOR" not in block and "NEGATOR" not in block
    assert block.count("CREATE OPERATOR @ (") == 2 and "PROCEDURE  = spoint_subset_smoc" in block
    assert not script.needs_repair()
    # idempotent, and the original is kept beside it
    assert script.repair() is False
    assert path.read_text() == fixed
    assert (tmp_path / "pg_sphere--1.2.0.sql.orig").read_text() == SAMPLE


def test_extension_is_installed(conn) -> None:
    version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'pg_sphere'").fetchone()
    assert version is not None
    inside = conn.execute("SELECT spoint '(10d, 20d)' @ scircle '<(10d, 20d), 1d>'").fetchone()[0]
    assert inside is True
