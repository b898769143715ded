"""The demo grid of clump SED models (``compactsources.sed_models``).

The grid is the full product of four axes, 20 x 5 x 20 x 10 = 20,000 models, ``id`` counting
from 1 in C order over (clump_mass, compact_mass_fraction, clump_upper_age, dust_temp):

- ``clump_mass``: 20 values from 10 to 10^4 Msun, log-spaced;
- ``compact_mass_fraction``: the fraction of the clump turned into stars, 0.01 ... 0.4 (5 values);
- ``clump_upper_age``: 20 values from 10^4 to 10^6 yr, log-spaced;
- ``dust_temp``: the envelope temperature, 10 values from 10 to 40 K.

For each model the stars have the mass ``f M``, half a solar mass each on average; the share
that has reached the zero-age main sequence grows with age as ``1 - exp(-age / 2e5 yr)``. The
three most massive ZAMS stars follow ``m_k = m_1 k**-0.7`` with ``m_1`` growing with the ZAMS
mass, on a piecewise power-law mass-luminosity relation and ``T_eff = 5800 K m**0.55``.
Protostars radiate accretion luminosity (10 Lsun per Msun). The SED at 1 kpc is the cold
envelope (grey body, beta 2, mass ``(1 - f) M`` at ``dust_temp``) plus a warm shell (beta 1.5)
and a hot inner shell (beta 1) that re-emit 95% and 5% of the stellar luminosity; their
temperatures rise slowly with luminosity. Fluxes are in mJy at 1 kpc.
"""

from __future__ import annotations

import numpy as np

from demo.physics import greybody, greybody_luminosity

__all__ = ["BAND_WAVELENGTHS", "make_sed_models"]

#: The 17 model bands in the client's order, with their wavelengths in um.
BAND_WAVELENGTHS: dict[str, float] = {
    "wise1": 3.4, "i1": 3.6, "i2": 4.5, "wise2": 4.6, "i3": 5.8, "i4": 8.0, "wise3": 12.0,
    "wise4": 22.0, "m1": 24.0, "pacs1": 70.0, "pacs2": 100.0, "pacs3": 160.0, "spir1": 250.0,
    "spir2": 350.0, "spir3": 500.0, "laboc": 870.0, "bol11": 1100.0,
}


def _zams_luminosity(m: np.ndarray) -> np.ndarray:
    return np.where(m <= 10.0, m**3.5, 10.0**3.5 * (m / 10.0) ** 2.5)


def make_sed_models() -> dict[str, np.ndarray]:
    """The model grid as column arrays (20,000 rows), identical on every call."""
    mass_axis = np.geomspace(10.0, 1e4, 20)
    frac_axis = np.array([0.01, 0.05, 0.1, 0.2, 0.4])
    age_axis = np.geomspace(1e4, 1e6, 20)
    temp_axis = np.linspace(10.0, 40.0, 10)
    m, f, age, t = (a.ravel() for a in np.meshgrid(mass_axis, frac_axis, age_axis, temp_axis, indexing="ij"))
    n = m.size

    m_star = f * m
    n_star = np.maximum(1, np.rint(m_star / 0.5)).astype(np.int32)
    zams_share = 1.0 - np.exp(-age / 2e5)
    m_zams = m_star * zams_share
    n_zams = np.rint(n_star * zams_share).astype(np.int32)
    m1 = np.minimum(60.0, 0.8 * np.maximum(m_zams, 1e-3) ** 0.6)
    cols: dict[str, np.ndarray] = {"id": np.arange(1, n + 1, dtype=np.int64)}
    zams = {}
    l_top = np.zeros(n)
    for k in (1, 2, 3):
        mk = np.where(n_zams >= k, m1 * k**-0.7, np.nan)
        lk = _zams_luminosity(mk)
        zams[k] = (lk, mk, np.minimum(5800.0 * mk**0.55, 50000.0))
        l_top += np.nan_to_num(lk)
    l_zams = np.where(n_zams > 0, l_top * 1.3 + m_zams, 0.0)
    l_star = l_zams + 10.0 * (m_star - m_zams)

    envelope = (1.0 - f) * m
    t_warm = 40.0 * (1.0 + l_star / 1e3) ** 0.12
    t_hot = 250.0 * (1.0 + l_star / 1e4) ** 0.1
    warm_mass = 0.95 * l_star / greybody_luminosity(1.0, t_warm, 1.5)
    hot_mass = 0.05 * l_star / greybody_luminosity(1.0, t_hot, 1.0)
    for name, wl in BAND_WAVELENGTHS.items():
        s = greybody(wl, envelope, t, 2.0, 1.0) + greybody(wl, warm_mass, t_warm, 1.5, 1.0)
        cols[name] = 1e3 * (s + greybody(wl, hot_mass, t_hot, 1.0, 1.0))
    cols.update(
        clump_mass=m, compact_mass_fraction=f, clump_upper_age=age, dust_temp=t,
        bolometric_luminosity=greybody_luminosity(envelope, t, 2.0) + l_star,
        n_star_tot=n_star, m_star_tot=m_star, n_star_zams=n_zams, m_star_zams=m_zams,
        l_star_tot=l_star, l_star_zams=l_zams,
    )
    for k in (1, 2, 3):
        lk, mk, tk = zams[k]
        cols[f"zams_luminosity_{k}"], cols[f"zams_mass_{k}"], cols[f"zams_temperature_{k}"] = lk, mk, tk
    return cols
