"""Rows as ``COPY ... TO STDOUT`` sends them: the unit the writers of ``vo/votable`` encode.

Kept apart from ``db/query.py`` (which speaks libpq) so the writers can be built and tested on
bytes alone, without a database driver.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["CopyBatch", "CopyFormat"]

CopyFormat = Literal["binary", "text", "csv"]


@dataclass(frozen=True, slots=True)
class CopyBatch:
    """Consecutive whole rows of a ``COPY ... TO STDOUT`` stream.

    ``data`` holds the rows exactly as PostgreSQL sent them (binary: field count, then
    length and value of each field; text and CSV: one line per row, ``\\n`` included);
    ``lengths[i]`` is the size in bytes of row ``i``.
    """

    data: bytes
    lengths: np.ndarray

    @property
    def nrows(self) -> int:
        """Number of rows in the batch."""
        return len(self.lengths)

    def head(self, nrows: int) -> CopyBatch:
        """The first ``nrows`` rows."""
        lengths = self.lengths[:nrows]
        return CopyBatch(self.data[: int(lengths.sum())], lengths)
