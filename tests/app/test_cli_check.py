"""`vlkb check` on a production configuration: it warns about what must not reach production (the
development issuer, pgSphere operators not LEAKPROOF, a results bucket open to anonymous requests)
without failing the check, and says nothing of the issuer once a real one is configured."""

from __future__ import annotations

import pytest

from tests.app.test_cli_errors import run_vlkb
from tests.conftest import free_port
from tests.s3_server import s3_server


def _check(database, **env: str) -> str:
    proc = run_vlkb("check", VLKB_HOME=str(database.home), VLKB_DB_PORT=str(database.port),
                    VLKB_PORT=str(free_port()), **env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    return proc.stdout


def test_embedded_default_warns_of_the_development_issuer(database) -> None:
    out = _check(database)
    assert "[WARN] identity: tokens of the local development issuer are accepted" in out
    assert "[WARN] public URL: VLKB_BASE_URL is unset" in out
    # the session's migration ran as a superuser: the operators were marked
    assert "[ok  ] LEAKPROOF: pgSphere's index operators are LEAKPROOF" in out


def test_configured_issuer_and_base_url_are_not_warned_about(database) -> None:
    out = _check(database, VLKB_OIDC_ISSUER="https://login.example.org/realms/vo",
                 VLKB_BASE_URL="https://vo.example.org")
    assert "identity" not in out and "public URL" not in out


def test_results_bucket_open_to_anonymous_requests_is_warned_about(database, tmp_path) -> None:
    pytest.importorskip("s3fs")
    with s3_server(tmp_path) as s3:
        import s3fs

        s3fs.S3FileSystem(key=s3.env["AWS_ACCESS_KEY_ID"], secret=s3.env["AWS_SECRET_ACCESS_KEY"],
                          client_kwargs={"endpoint_url": s3.endpoint}, skip_instance_cache=True).mkdir("open-results")
        # moto, like a bucket with a public policy, answers anonymous listings
        out = _check(database, VLKB_RESULTS_URL="s3://open-results/jobs", **s3.env)
        assert "[WARN] results store: bucket open-results answers anonymous listings" in out
