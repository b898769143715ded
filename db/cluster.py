"""The embedded default: a private PostgreSQL cluster under ``VLKB_HOME``.

The cluster is created with the system's ``initdb`` and run with ``pg_ctl``; it listens on a
Unix socket in ``VLKB_HOME/run`` and on 127.0.0.1 at a free port picked once and kept in
``VLKB_HOME/pg.port``. Local (socket) connections are trusted, TCP logins need a password
that no role has, so only processes that can reach the socket directory get in.

PostgreSQL refuses to run as root, so when vlkb runs as root the cluster runs as the
``postgres`` system user (created by Debian's package), which then owns the data directory.

Every failure a user can fix raises :class:`ClusterError` with one line saying what to do;
the CLI prints it without a traceback.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ClusterError", "EmbeddedCluster", "find_bindir", "port_free"]

SUPERUSER = "vlkb"
DATABASE = "vlkb"
_RUN_AS_WHEN_ROOT = "postgres"


class ClusterError(RuntimeError):
    """A problem with the embedded cluster that the operator can fix; the message says how."""


def find_bindir(configured: Path | None = None) -> Path:
    """The directory with initdb/pg_ctl: ``configured``, else the newest Debian install, else PATH."""
    if configured:
        if not (configured / "initdb").exists():
            raise ClusterError(f"no initdb in VLKB_PG_BINDIR={configured}; point it at PostgreSQL's bin/")
        return configured
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise ClusterError(
        "PostgreSQL server binaries not found: run `make setup` (installs postgresql-15 and "
        "postgresql-15-pgsphere) or set VLKB_PG_BINDIR, or set VLKB_DATABASE_URL to use an external server"
    )


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on ``host:port`` now (as servers bind, with SO_REUSEADDR: a port
    left in TIME_WAIT by a stopped server counts as free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class EmbeddedCluster:
    """A private PostgreSQL cluster living in ``home``."""

    home: Path
    bindir: Path | None = None
    port: int | None = None

    @property
    def datadir(self) -> Path:
        return self.home / "pgdata"

    @property
    def sockdir(self) -> Path:
        return self.home / "run"

    @property
    def logfile(self) -> Path:
        return self.home / "log" / "postgres.log"

    @property
    def _portfile(self) -> Path:
        return self.home / "pg.port"

    # -- who runs the server -------------------------------------------------------------
    @staticmethod
    def _as_root() -> bool:
        return os.geteuid() == 0

    def _cmd(self, *args: str) -> list[str]:
        """Wrap a server command so it runs as the postgres user when we are root."""
        if self._as_root():
            return ["runuser", "-u", _RUN_AS_WHEN_ROOT, "--", *args]
        return list(args)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self._cmd(*args), capture_output=True, text=True, check=check)

    def _bin(self, name: str) -> str:
        return str(find_bindir(self.bindir) / name)

    # -- state -----------------------------------------------------------------------------
    def initialized(self) -> bool:
        """True when the data directory holds a cluster."""
        return (self.datadir / "PG_VERSION").exists()

    def running(self) -> bool:
        """True when the cluster's postmaster is up."""
        if not self.initialized():
            return False
        res = self._run(self._bin("pg_ctl"), "status", "-D", str(self.datadir), check=False)
        return res.returncode == 0

    def current_port(self) -> int:
        """The port the cluster uses: configured, remembered, or a newly picked free one."""
        if self.port:
            return self.port
        if self._portfile.exists():
            return int(self._portfile.read_text().strip())
        return _free_port()

    def url(self, dbname: str = DATABASE) -> str:
        """libpq URL over the Unix socket."""
        return f"postgresql://{SUPERUSER}@/{dbname}?host={self.sockdir}&port={self.current_port()}"

    # -- lifecycle -------------------------------------------------------------------------
    def _prepare_dirs(self) -> None:
        try:
            for d in (self.home, self.sockdir, self.logfile.parent):
                d.mkdir(parents=True, exist_ok=True)
            probe = self.home / ".write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise ClusterError(
                f"VLKB_HOME={self.home} is not writable ({exc.strerror}): choose a writable directory"
            ) from exc
        if self._as_root():
            try:
                pg = pwd.getpwnam(_RUN_AS_WHEN_ROOT)
            except KeyError as exc:
                raise ClusterError(
                    "running as root needs the 'postgres' system user: run `make setup` "
                    "(apt-get install postgresql-15)"
                ) from exc
            for d in (self.sockdir, self.logfile.parent):
                os.chown(d, pg.pw_uid, pg.pw_gid)
            if self.datadir.exists():
                os.chown(self.datadir, pg.pw_uid, pg.pw_gid)
            res = self._run("test", "-x", str(self.home), check=False)
            if res.returncode != 0:
                raise ClusterError(
                    f"the postgres user cannot reach {self.home}: make its parent directories "
                    "world-searchable (chmod o+x) or set VLKB_HOME elsewhere"
                )

    def init(self) -> None:
        """Create the cluster if it does not exist (idempotent)."""
        self._prepare_dirs()
        if self.initialized():
            return
        self.datadir.mkdir(mode=0o700, exist_ok=True)
        if self._as_root():
            pg = pwd.getpwnam(_RUN_AS_WHEN_ROOT)
            os.chown(self.datadir, pg.pw_uid, pg.pw_gid)
        res = self._run(
            self._bin("initdb"), "-D", str(self.datadir), "-U", SUPERUSER, "-E", "UTF8",
            "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256", check=False,
        )
        if res.returncode != 0:
            raise ClusterError(f"initdb failed: {res.stderr.strip().splitlines()[-1:]} (see {self.datadir})")

    def start(self, timeout: float = 60) -> None:
        """Start the cluster (creating it first if needed) and its database; no-op if running."""
        self.init()
        if self.running():
            return
        port = self.current_port()
        if not port_free(port):
            if self.port or self._portfile.exists():
                raise ClusterError(
                    f"port {port} for the embedded PostgreSQL is taken by another program: "
                    f"stop it, or set VLKB_DB_PORT to a free port (or delete {self._portfile})"
                )
            port = _free_port()
        self._portfile.write_text(str(port))
        opts = f"-p {port} -k {self.sockdir} -c listen_addresses=127.0.0.1"
        res = self._run(
            self._bin("pg_ctl"), "start", "-D", str(self.datadir), "-l", str(self.logfile),
            "-o", opts, "-w", "-t", str(int(timeout)), check=False,
        )
        if res.returncode != 0:
            tail = self.logfile.read_text(errors="replace").strip().splitlines()[-3:] if self.logfile.exists() else []
            raise ClusterError(f"PostgreSQL did not start: {' | '.join(tail) or res.stderr.strip()}")
        self._ensure_database()

    def _ensure_database(self) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')

    def stop(self) -> None:
        """Stop the cluster (fast shutdown: open transactions roll back); no-op if not running."""
        if self.running():
            self._run(self._bin("pg_ctl"), "stop", "-D", str(self.datadir), "-m", "fast", "-w")

    def status(self) -> str:
        """One line describing the cluster's state."""
        if not self.initialized():
            return f"no cluster in {self.datadir}"
        if self.running():
            return f"running on port {self.current_port()}, socket {self.sockdir}, data {self.datadir}"
        return f"stopped (data {self.datadir})"

    def server_version(self) -> str:
        res = subprocess.run([self._bin("postgres"), "--version"], capture_output=True, text=True)
        m = re.search(r"(\d+\.\d+)", res.stdout)
        return m.group(1) if m else res.stdout.strip()
