"""TAP TSV for the ViaLactea client: catalogue rows that survive a split on any whitespace.

``VialacteaSource`` splits the rows of the compact-source and filament catalogues on any run
of whitespace and reads fields by position (vialactea-client.md 1.C), so on the client's TAP
mount a TSV answer that reads only catalogue tables (:data:`CATALOGUE_SCHEMAS`) is rewritten
row by row from the standard TSV writer's output:

- an empty field (NULL) becomes ``nan`` in a numeric column (the spelling Qt's
  ``toDouble``, numpy and astropy all read) and ``missing`` in any other column (the client's
  own word for an absent band designation; the published data already stores ``missing``
  and a distance of -9999 where unknown, so these are what NULLs elsewhere look like);
- spaces inside a value become ``_`` in text and ``,`` in arrays (DALI geometry values).

A TSV answer over ``TAP_SCHEMA.tables`` or ``TAP_SCHEMA.columns`` alone also lists each catalogue
table under its ``vlkb_`` name (:func:`tap_schema_tsv`). Any other answer (``datasets.surveys``,
joins with other tables) is the standard TSV untouched: the client splits ``datasets.surveys`` on tabs and compares
``"70 um"`` exactly with SIA's ``obs_title``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence

from vo.votable.columns import ResultColumn, plan_columns

__all__ = [
    "CATALOGUE_SCHEMAS", "MISSING", "NAN", "catalogue_tsv", "is_catalogue", "is_tap_schema", "tap_schema_tsv",
]

#: schemas (as declared, after aliases) whose tables the client splits on whitespace
CATALOGUE_SCHEMAS = ("compactsources", "filaments")
MISSING = b"missing"
NAN = b"nan"

_NUMERIC = {"short", "int", "long", "float", "double"}


def is_catalogue(tables: Sequence[str]) -> bool:
    """Whether a query reading ``tables`` (qualified names) reads catalogue tables only."""
    return bool(tables) and all(t.split(".", 1)[0].lower() in CATALOGUE_SCHEMAS for t in tables)


class _RowFixer:
    """Rewrites TSV lines of ``columns`` (see the module docstring)."""

    def __init__(self, columns: Sequence[ResultColumn]) -> None:
        kinds = [p.kind for p in plan_columns(columns)]
        self._empty = [NAN if k in _NUMERIC else MISSING for k in kinds]
        self._space = [b"," if k == "double[]" else b"_" for k in kinds]

    def line(self, line: bytes) -> bytes:
        if b" " not in line and b"\t\t" not in line and not line.startswith(b"\t") and not line.endswith(b"\t"):
            return line
        fields = line.split(b"\t")
        if len(fields) != len(self._empty):  # cannot happen with the standard writer; never guess
            raise ValueError(f"TSV row has {len(fields)} fields, expected {len(self._empty)}")
        for i, value in enumerate(fields):
            if not value:
                fields[i] = self._empty[i]
            elif b" " in value:
                fields[i] = b" ".join(value.split()).replace(b" ", self._space[i]) or self._empty[i]
        return b"\t".join(fields)


async def _by_line(chunks: AsyncIterator[bytes], header_line: Callable[[bytes], None],
                   line: Callable[[bytes], bytes]) -> AsyncIterator[bytes]:
    """The TSV ``chunks`` with the header passed to ``header_line`` and every row through ``line``."""
    rest = b""
    header = True
    try:
        async for chunk in chunks:
            data = rest + chunk
            end = data.rfind(b"\n")
            if end < 0:
                rest = data
                continue
            rest = data[end + 1:]
            lines = data[:end].split(b"\n")
            if header:
                header = False
                header_line(lines[0])
                out = [lines[0]] + [line(x) for x in lines[1:]]
            else:
                out = [line(x) for x in lines]
            yield b"\n".join(out) + b"\n"
        if rest:
            if header:
                header_line(rest)
                yield rest
            else:
                yield line(rest)
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


async def catalogue_tsv(chunks: AsyncIterator[bytes], columns: Sequence[ResultColumn]) -> AsyncIterator[bytes]:
    """The standard TSV ``chunks`` (header line first) with every row rewritten for the client."""
    fixer = _RowFixer(columns)
    async for out in _by_line(chunks, lambda _: None, fixer.line):
        yield out


def is_tap_schema(tables: Sequence[str]) -> bool:
    """Whether a query reads ``TAP_SCHEMA.tables`` or ``TAP_SCHEMA.columns`` alone."""
    return len(tables) == 1 and tables[0].lower() in ("tap_schema.tables", "tap_schema.columns")


async def tap_schema_tsv(chunks: AsyncIterator[bytes], prefix: str = "vlkb_") -> AsyncIterator[bytes]:
    """TAP_SCHEMA rows of catalogue tables, each followed by the same row under the ``vlkb_`` name.

    The newest client looks layer labels up by ``vlkb_compactsources.sed_view_final.designation70``
    and filament layers by ``vlkb_filaments.filaments.contour`` (table_name + column_name, its
    hard-coded schema names), older builds by the plain names; both names are queryable in ADQL
    (schema aliases), so on the client's mount both are listed.
    """
    where: dict[str, int] = {}

    def header(line: bytes) -> None:
        names = line.split(b"\t")
        if b"table_name" in names:
            where["table_name"] = names.index(b"table_name")

    def line(row: bytes) -> bytes:
        i = where.get("table_name")
        if i is None:
            return row
        fields = row.split(b"\t")
        if len(fields) <= i or fields[i].split(b".", 1)[0].decode(errors="replace").lower() not in CATALOGUE_SCHEMAS:
            return row
        fields[i] = prefix.encode() + fields[i]
        return row + b"\n" + b"\t".join(fields)

    async for out in _by_line(chunks, header, line):
        yield out
