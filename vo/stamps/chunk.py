"""The stamps of a chunk of sources: one coverage query per survey for the whole chunk, tiles kept.

A job's sources are made in chunks (:data:`CHUNK` sources): the ICRS centres of a chunk are
computed in one vectorised transform, the covering datasets of each survey come from one
statement for the chunk (:func:`vo.stamps.coverage.covering_many_blocking`), and each stamp is
cut from a kept tile when it can (:mod:`vo.stamps.tiles`), the general path otherwise. A
:class:`ChunkMaker` keeps the job's datasets and tiles between chunks; a thread running chunks of
a job (any process may) keeps them for its next chunk of the same job (:func:`kept`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import psycopg
from astropy import units as u
from astropy.coordinates import SkyCoord

from vo.caller import Caller, Dataset
from vo.stamps.coverage import SurveyRef, covering_many_blocking
from vo.stamps.regrid import RegridTiles
from vo.stamps.regrid import make_stamps as regrid_stamps
from vo.stamps.stamp import Options, Source, Stamp
from vo.stamps.tiles import TileCache, fast_path_applies

__all__ = ["CHUNK", "ChunkMaker", "kept"]

#: sources per chunk: one coverage statement per survey, and a unit of work for a process
CHUNK = 200


def icrs_of(sources: Sequence[Source]) -> list[tuple[float, float]]:
    """The ICRS centres of ``sources``, in one transform (a SkyCoord per source costs ~10 ms)."""
    if not sources:
        return []
    c = SkyCoord([s.l for s in sources] * u.deg, [s.b for s in sources] * u.deg, frame="galactic").icrs
    return list(zip(np.asarray(c.ra.deg, dtype=float).tolist(), np.asarray(c.dec.deg, dtype=float).tolist(),
                    strict=True))


@dataclass
class ChunkMaker:
    """Makes the stamps of chunks of sources for one job, reading for ``caller``."""

    conn: psycopg.Connection
    caller: Caller
    surveys: list[SurveyRef]
    options: Options
    known: dict[str, Dataset] = field(default_factory=dict)
    tiles: TileCache = field(default_factory=TileCache)
    regrid_tiles: RegridTiles = field(default_factory=RegridTiles)

    def make(self, sources: Sequence[Source]) -> list[list[Stamp]]:
        """The stamps of each source, one per survey in the order of ``surveys``."""
        radec = icrs_of(sources)
        centres = [(s.l, s.b, s.radius, ra, dec) for s, (ra, dec) in zip(sources, radec, strict=True)]
        covers = [covering_many_blocking(self.conn, sv, centres, self.caller, self.known) for sv in self.surveys]
        fast = fast_path_applies(self.options)
        out: list[list[Stamp]] = []
        for k, src in enumerate(sources):
            made: dict[str, Stamp] = {}
            rest = []
            for sv, cov in zip(self.surveys, covers, strict=True):
                st = self.tiles.stamp(src, radec[k], sv.text, cov[k].full, self.options) if fast else None
                if st is not None:
                    made[sv.text] = st
                else:
                    rest.append((sv.text, cov[k].full, cov[k].partial))
            if rest:
                made.update((st.survey, st) for st in regrid_stamps(src, rest, self.options, self.regrid_tiles))
            out.append([made[sv.text] for sv in self.surveys])
        return out


_kept = threading.local()


def kept(job_id: str) -> tuple[dict[str, Dataset], TileCache]:
    """The datasets and tiles this thread keeps for ``job_id`` between its chunks (a job's chunks
    are parts any process may run, ``vo/jobs/stamps.py``): those of the last job it worked for."""
    if getattr(_kept, "job_id", None) != job_id:
        _kept.job_id, _kept.known, _kept.tiles = job_id, {}, TileCache()
    return _kept.known, _kept.tiles
