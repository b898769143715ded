"""One catalogue from overlapping tiles: a source seen in two tiles is kept once.

Detections from different tiles closer than ``radius`` (a beam) are the same source; the one
kept is the one farthest from its own tile's edge, where its island was least likely to be cut
and its background best measured. Detections of one tile are never merged with each other:
the finder already decided those are distinct components.
"""

from __future__ import annotations

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord

__all__ = ["duplicates"]


def duplicates(glon: np.ndarray, glat: np.ndarray, tile: np.ndarray, edge: np.ndarray, radius: float) -> np.ndarray:
    """A mask of the detections to drop (True: a duplicate of a detection kept), ``radius`` in degrees."""
    n = len(glon)
    drop = np.zeros(n, dtype=bool)
    if n < 2 or len(np.unique(tile)) < 2:
        return drop
    pos = SkyCoord(glon * u.deg, glat * u.deg, frame="galactic")
    i, j, _, _ = pos.search_around_sky(pos, radius * u.deg)
    pairs = (tile[i] != tile[j]) & (i != j)
    i, j = i[pairs], j[pairs]
    neighbours: dict[int, list[int]] = {}
    for a, b in zip(i.tolist(), j.tolist(), strict=True):
        neighbours.setdefault(a, []).append(b)
    # best placed first: each kept detection removes its other-tile neighbours
    for k in np.argsort(-edge, kind="stable"):
        if drop[k]:
            continue
        for other in neighbours.get(int(k), []):
            drop[other] = True
    return drop
