"""Bad configuration gives one clear line saying what to do, never a traceback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

VLKB = str(Path(sys.executable).parent / "vlkb")


def run_vlkb(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("VLKB_")}
    full.update(env)
    return subprocess.run([VLKB, *args], capture_output=True, text=True, env=full, timeout=120)


def assert_one_clear_line(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def test_no_postgresql_binaries(tmp_path: Path) -> None:
    proc = run_vlkb("db", "start", VLKB_HOME=str(tmp_path), VLKB_PG_BINDIR=str(tmp_path / "nowhere"))
    assert_one_clear_line(proc, "initdb", "VLKB_PG_BINDIR")


def test_unwritable_home(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    proc = run_vlkb("db", "start", VLKB_HOME=str(blocker / "home"))
    assert_one_clear_line(proc, "VLKB_HOME", "writable")


def test_database_unreachable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # nothing listens on that port once the socket is closed
    proc = run_vlkb("db", "migrate", VLKB_DATABASE_URL=f"postgresql://nobody@127.0.0.1:{port}/none")
    assert_one_clear_line(proc, "database unreachable", "VLKB_DATABASE_URL")


def test_db_port_taken() -> None:
    # under /tmp directly: the cluster runs as the postgres user when tests run as root
    home = Path(tempfile.mkdtemp(prefix="vlkb-port-"))
    home.chmod(0o755)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = run_vlkb("db", "start", VLKB_HOME=str(home), VLKB_DB_PORT=str(port))
    try:
        assert_one_clear_line(proc, f"port {port}", "VLKB_DB_PORT")
    finally:
        run_vlkb("db", "stop", VLKB_HOME=str(home))
        shutil.rmtree(home, ignore_errors=True)


def test_http_port_taken(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = run_vlkb("serve", VLKB_HOME=str(tmp_path), VLKB_PORT=str(port))
    assert_one_clear_line(proc, f"port {port}", "VLKB_PORT")


@pytest.mark.parametrize("value", ["notanumber", "-"])
def test_bad_setting_value(value: str) -> None:
    proc = run_vlkb("db", "status", VLKB_DB_PORT=value)
    assert_one_clear_line(proc, "VLKB_DB_PORT")


def test_check_reports_each_line(database) -> None:
    proc = run_vlkb("check", VLKB_HOME=str(database.home), VLKB_DB_PORT=str(database.port), VLKB_PORT="1")
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "[ok  ] database: PostgreSQL" in proc.stdout, proc.stdout
    assert "pgSphere install script" in proc.stdout


def test_check_warns_of_a_local_executor_beside_a_broker_and_of_missing_quotas(database) -> None:
    env = {"VLKB_HOME": str(database.home), "VLKB_DB_PORT": str(database.port), "VLKB_PORT": "1"}
    proc = run_vlkb("check", **env, VLKB_BROKER_URL="redis://127.0.0.1:1/0")
    assert "[WARN] executor: VLKB_BROKER_URL is set but VLKB_EXECUTOR is local" in proc.stdout, proc.stdout
    assert "[WARN] quotas: VLKB_QUOTA_ANONYMOUS sets neither" in proc.stdout
    proc = run_vlkb("check", **env, VLKB_WORKERS="2", VLKB_QUOTA_ANONYMOUS='{"queries_per_window": 60}')
    assert "[WARN] quotas: VLKB_QUOTA_REDIS_URL is unset" in proc.stdout, proc.stdout
    assert "executor" not in proc.stdout
