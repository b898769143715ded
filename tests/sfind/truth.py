"""What the demo generator drew into an image: the truth the source-finding tests score against.

The blobs are rebuilt from the generator itself (same seed and scale as the test database), never
from a finder's output. Only the radio continuum surveys are used for scoring: their compact
sources are drawn as the catalogue of :func:`demo.images._radio` plus the bubble discs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord

from demo import DEFAULT_SEED
from demo.images import Blobs, _radio
from demo.sky import make_sky
from demo.structures import make_structures
from demo.surveys import DEMO_SURVEYS, Layout

__all__ = ["Score", "radio_truth", "score"]


@cache
def radio_truth(slug: str) -> tuple[Blobs, Layout]:
    """Every blob drawn into the tiles of the radio survey ``slug``, and its layout."""
    structures = make_structures(DEFAULT_SEED, 1)
    sky = make_sky(DEFAULT_SEED, 1, structures)
    layout = next(lay for s, lay in DEMO_SURVEYS if s.slug == slug)
    return _radio(sky, structures, layout, DEFAULT_SEED, slug), layout


@dataclass(frozen=True)
class Score:
    completeness10: float
    completeness5: float
    reliability: float
    position_error: float  # median, in beams, unresolved sources S/N >= 10
    flux_ratio: float  # median measured / true integrated flux, unresolved sources S/N >= 10
    position_error5: float  # the same two for unresolved sources of S/N >= 5
    flux_ratio5: float
    n_true10: int
    n_detected: int
    n_excluded: int


def score(truth: Blobs, layout: Layout, inside: np.ndarray, glon: np.ndarray, glat: np.ndarray,
          flux: np.ndarray) -> Score:
    """Score detections against ``truth``; ``inside`` marks the true sources that lie well inside the
    searched image. Completeness counts a true source found when a detection lies within one beam.
    Bubble discs (FWHM > 3 beams) are extended emission a Gaussian-component finder
    fragments by design: detections and true sources within a disc's FWHM are left out of the score."""
    beam = layout.beam / 3600
    lon = np.where(truth.lon < 0, truth.lon + 360, truth.lon)
    tpos = SkyCoord(lon * u.deg, truth.lat * u.deg, frame="galactic")
    dpos = SkyCoord(glon * u.deg, glat * u.deg, frame="galactic")
    disc = truth.fwhma > 3 * beam
    in_disc_d = np.zeros(len(glon), dtype=bool)
    in_disc_t = np.zeros(len(lon), dtype=bool)
    for k in np.flatnonzero(disc):
        in_disc_d |= dpos.separation(tpos[k]).deg < truth.fwhma[k]
        in_disc_t |= tpos.separation(tpos[k]).deg < truth.fwhma[k]
    in_disc_t &= ~disc
    snr = truth.amp / layout.noise
    candidates = inside & ~disc & ~in_disc_t
    # completeness: true sources with a detection within one beam
    if len(glon):
        _, sep, _ = tpos.match_to_catalog_sky(dpos)
        tsep = sep.deg
    else:
        tsep = np.full(len(lon), np.inf)
    found = tsep < beam
    c10, c5 = candidates & (snr >= 10), candidates & (snr >= 5)
    # reliability: detections within one beam of a true source (of any brightness), or within the FWHM of a
    # resolved one (a finder may fit a resolved source with several components)
    keep = ~in_disc_d
    compact = np.flatnonzero(~disc)
    if keep.any():
        near = np.zeros(int(keep.sum()), dtype=bool)
        kept = dpos[keep]
        for k in compact[truth.fwhma[compact] > beam * 1.0001]:
            near |= kept.separation(tpos[k]).deg < truth.fwhma[k]
        _, dsep, _ = kept.match_to_catalog_sky(tpos[compact])
        reliable = float(np.mean(near | (dsep.deg < beam)))
    else:
        reliable = 0.0
    # position and flux of unresolved sources (drawn with the beam's size)
    unresolved = found & (truth.fwhma <= beam * 1.0001)
    point, point5 = c10 & unresolved, c5 & unresolved
    true_flux = truth.amp * truth.fwhma * truth.fwhmb / beam**2  # Jy: F = peak x source area / beam area
    if len(glon):
        didx, _, _ = tpos.match_to_catalog_sky(dpos)
        ratio, ratio5 = flux[didx[point]] / true_flux[point], flux[didx[point5]] / true_flux[point5]
    else:
        ratio = ratio5 = np.zeros(0)
    return Score(
        completeness10=float(found[c10].mean()) if c10.any() else 0.0,
        completeness5=float(found[c5].mean()) if c5.any() else 0.0,
        reliability=reliable,
        position_error=float(np.median(tsep[point]) / beam) if point.any() else np.inf,
        flux_ratio=float(np.median(ratio)) if len(ratio) else 0.0,
        position_error5=float(np.median(tsep[point5]) / beam) if point5.any() else np.inf,
        flux_ratio5=float(np.median(ratio5)) if len(ratio5) else 0.0,
        n_true10=int(c10.sum()), n_detected=int(keep.sum()), n_excluded=int((~keep).sum()),
    )
