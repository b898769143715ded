"""HTTP Basic accounts for the ViaLactea client's TAP mount (off unless configured).

Some client builds answer a 401 Basic challenge with built-in credentials instead of sending
a bearer token (vialactea-client.md 1.C). The operator may list such accounts in
``VLKB_VIALACTEA_BASIC_ACCOUNTS``: entries separated by whitespace or ``;``, each
``user:hash`` or ``user:hash:group1,group2``. ``hash`` is a bcrypt hash (``$2b$...``) or
``sha256$<salt>$<hex of sha256(salt + password)>``. A match gives the same identity model as
a token: the user name (job owner) and the groups whose surveys they may read.

No HTTP here: the router decodes the header and builds the identity.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

import bcrypt

__all__ = ["BasicAccount", "parse_accounts", "sha256_hash", "verify"]


@dataclass(frozen=True)
class BasicAccount:
    """One account: user name, password hash, groups."""

    user: str
    hash: str
    groups: tuple[str, ...] = ()


def parse_accounts(text: str) -> dict[str, BasicAccount]:
    """The accounts of the setting's ``text``, by user; ValueError names a malformed entry."""
    out: dict[str, BasicAccount] = {}
    for entry in text.replace(";", " ").split():
        user, sep, rest = entry.partition(":")
        hashed, _, groups = rest.partition(":")
        if not user or not sep or not hashed:
            raise ValueError(f"basic account {user or entry!r}: expected user:hash[:group,group]")
        if not (hashed.startswith(("$2a$", "$2b$", "$2y$")) or _sha256_parts(hashed) is not None):
            raise ValueError(f"basic account {user!r}: the hash is neither bcrypt ($2b$...) nor sha256$salt$hex")
        if user in out:
            raise ValueError(f"basic account {user!r} is listed twice")
        out[user] = BasicAccount(user, hashed, tuple(g for g in groups.split(",") if g))
    return out


def _sha256_parts(hashed: str) -> tuple[str, str] | None:
    parts = hashed.split("$")
    if len(parts) != 3 or parts[0] != "sha256" or len(parts[2]) != 64:
        return None
    try:
        bytes.fromhex(parts[2])
    except ValueError:
        return None
    return parts[1], parts[2].lower()


def sha256_hash(password: str, salt: str) -> str:
    """The ``sha256$salt$hex`` form of ``password`` (for operators writing the setting)."""
    return f"sha256${salt}${hashlib.sha256((salt + password).encode()).hexdigest()}"


def verify(accounts: dict[str, BasicAccount], user: str, password: str) -> BasicAccount | None:
    """The account when ``user`` exists and ``password`` matches its hash, else None."""
    account = accounts.get(user)
    if account is None:
        return None
    sha = _sha256_parts(account.hash)
    if sha is not None:
        salt, digest = sha
        ok = hmac.compare_digest(hashlib.sha256((salt + password).encode()).hexdigest(), digest)
    else:
        try:
            ok = bcrypt.checkpw(password.encode(), account.hash.encode())
        except ValueError:
            ok = False
    return account if ok else None
