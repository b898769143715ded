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

Any other answer (``datasets.surveys``, ``TAP_SCHEMA``, joins with other tables) is the
standard TSV untouched: the client splits ``datasets.surveys`` on tabs and compares
``"70 um"`` exactly with SIA's ``obs_title``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from vo.votable.columns import ResultColumn, plan_columns

__all__ = ["CATALOGUE_SCHEMAS", "MISSING", "NAN", "catalogue_tsv", "is_catalogue"]

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


async def catalogue_tsv(chunks: AsyncIterator[bytes], columns: Sequence[ResultColumn]) -> AsyncIterator[bytes]:
    """The standard TSV ``chunks`` (header line first) with every row rewritten for the client."""
    fixer = _RowFixer(columns)
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
                out = [lines[0]] + [fixer.line(x) for x in lines[1:]]
            else:
                out = [fixer.line(x) for x in lines]
            yield b"\n".join(out) + b"\n"
        if rest:
            yield rest if header else fixer.line(rest)
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
