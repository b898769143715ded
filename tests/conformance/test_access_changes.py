"""A change of access reaches SODA cuts at once, though each process keeps the datasets it found
for callers (vo/lookups.py, VLKB_DATASET_LOOKUP_TTL 60 s by default).

A member of the restricted demo survey cuts one of its datasets a few times; the survey is then
given to another group (``db.policies.set_policy``, what ``vlkb policy set`` runs) and the
member's cuts must be refused well before the 60 s the answers may be kept; then the dataset is
withdrawn from ``vlkb.datasets`` for a moment, the same. With ``VLKB_DATASET_LOOKUP_TTL=0``
nothing is kept and the refusal is immediate. The rows are put back afterwards.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator

import httpx
import psycopg
import pytest
from astropy.io import fits

from db.policies import set_policy
from tests.conftest import Server, running_server

PRIVATE = "MeerKAT-private"
GROUP = "survey-team"
#: well under the default time to live (60 s): a refusal this soon was heard, not timed out
HEARD_WITHIN = 5.0


@pytest.fixture(scope="module")
def private(database) -> tuple[str, float, float]:
    with psycopg.connect(database.url) as c:
        did, ra, dec = c.execute("SELECT obs_publisher_did, s_ra, s_dec FROM ivoa.obscore WHERE obs_collection = %s "
                                 "ORDER BY 1 LIMIT 1", (PRIVATE,)).fetchone()
    return did, ra, dec


@pytest.fixture(scope="module", params=["60", "0"], ids=["answers kept", "ttl 0"])
def server(request, database, issuer) -> Iterator[Server]:
    with running_server(database, oidc_issuer=issuer.url, oidc_jwks_refresh="0",
                        dataset_lookup_ttl=request.param) as srv:
        yield srv


def _policy(conn: psycopg.Connection, groups: list[str]) -> None:
    set_policy(conn, PRIVATE, groups)


def _withdrawn(did: str) -> Callable[[psycopg.Connection], None]:
    def change(conn: psycopg.Connection) -> None:
        conn.execute("UPDATE vlkb.datasets SET publisher_did = publisher_did || '#away' WHERE publisher_did = %s",
                     (did,))
    return change


@pytest.mark.parametrize("what", ["policy", "withdrawal"])
def test_a_change_of_access_reaches_cuts_at_once(server, issuer, database, private, what) -> None:
    did, ra, dec = private
    member = {"Authorization": f"Bearer {issuer.token('alice', [GROUP])}"}

    def status() -> int:
        resp = httpx.get(server.url + "/soda/sync", params={"ID": did, "CIRCLE": f"{ra} {dec} 0.02"},
                         headers=member, timeout=60)
        if resp.status_code == 200:
            assert fits.open(io.BytesIO(resp.content))[0].data.size > 0
        else:
            assert b"SIMPLE" not in resp.content
        return resp.status_code

    assert [status() for _ in range(3)] == [200] * 3  # looked up, then answered from what was kept
    change = (lambda c: _policy(c, ["someone-else"])) if what == "policy" else _withdrawn(did)
    try:
        with psycopg.connect(database.url) as conn:
            change(conn)
        changed = time.monotonic()
        while status() != 404:
            assert time.monotonic() - changed < HEARD_WITHIN, "the change did not reach the cuts"
            time.sleep(0.05)
    finally:
        with psycopg.connect(database.url) as conn:
            _policy(conn, [GROUP])
            conn.execute("UPDATE vlkb.datasets SET publisher_did = %s WHERE publisher_did = %s",
                         (did, did + "#away"))
    assert status() == 200
