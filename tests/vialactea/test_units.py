"""The ViaLactea layer's pure parts: the catalogue TSV rewrite and the Basic account list."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import bcrypt
import pytest

from vo.adql.output import OutputColumn
from vo.vialactea.accounts import parse_accounts, sha256_hash, verify
from vo.vialactea.tsv import catalogue_tsv, is_catalogue


def col(name: str, datatype: str, pgtype: str, arraysize: str | None = None) -> OutputColumn:
    return OutputColumn(name=name, datatype=datatype, arraysize=arraysize, xtype=None, unit=None, ucd=None,
                        utype=None, description=None, pgtype=pgtype)


COLUMNS = [col("designation", "unicodeChar", "text", "*"), col("flux", "double", "double precision"),
           col("n", "int", "integer"), col("pos", "double", "float8[]", "*")]


def rewrite(chunks: list[bytes]) -> bytes:
    async def source() -> AsyncIterator[bytes]:
        for c in chunks:
            yield c

    async def collect() -> bytes:
        return b"".join([c async for c in catalogue_tsv(source(), COLUMNS)])

    return asyncio.run(collect())


def test_empty_fields_and_spaces_are_rewritten_across_chunk_borders() -> None:
    body = b"designation\tflux\tn\tpos\nG1 a\t\t3\t1.5 2.5\n\t0.5\t\t\nG2\t1\t2\t3 4\n"
    expected = b"designation\tflux\tn\tpos\nG1_a\tnan\t3\t1.5,2.5\nmissing\t0.5\tnan\tmissing\nG2\t1\t2\t3,4\n"
    assert rewrite([body]) == expected
    assert rewrite([body[i:i + 1] for i in range(len(body))]) == expected
    assert rewrite([body[:-1]]) == expected[:-1]
    for line in expected.split(b"\n")[1:-1]:
        assert len(line.split()) == 4


def test_catalogue_tables() -> None:
    assert is_catalogue(["compactsources.sed_view_final"])
    assert is_catalogue(["filaments.filaments", "filaments.branches"])
    assert not is_catalogue(["datasets.surveys"])
    assert not is_catalogue(["compactsources.band70um", "TAP_SCHEMA.columns"])
    assert not is_catalogue([])


def test_accounts() -> None:
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    accounts = parse_accounts(f"a:{hashed}:g1,g2; b:{sha256_hash('x', 's')}\n")
    assert accounts["a"].groups == ("g1", "g2") and accounts["b"].groups == ()
    assert verify(accounts, "a", "pw") == accounts["a"]
    assert verify(accounts, "a", "px") is None
    assert verify(accounts, "b", "x") == accounts["b"]
    assert verify(accounts, "b", "y") is None
    assert verify(accounts, "c", "pw") is None


TWICE = f"a:{sha256_hash('x', 's')} a:{sha256_hash('y', 's')}"


@pytest.mark.parametrize("text", ["a", "a:", "a:plain", "a:sha256$s$zz", TWICE])
def test_bad_account_lists(text: str) -> None:
    with pytest.raises(ValueError):
        parse_accounts(text)
