"""Grey-body physics shared by the demo catalogues and the SED model grid (cgs inside, Jy and Lsun out).

A grey body of dust mass-equivalent ``M`` (gas + dust, Msun) at temperature ``T`` seen at
distance ``d`` has ``S_nu = M kappa_nu B_nu(T) / d**2`` with the opacity of Beckwith et al.
(1990), ``kappa_nu = 0.1 (nu / 1 THz)**beta cm2/g`` per gram of gas.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ARCSEC", "C_CGS", "KPC_CM", "LSUN", "MSUN", "greybody", "greybody_luminosity", "planck"]

_H, _K = 6.62607015e-27, 1.380649e-16
C_CGS = 2.99792458e10
MSUN, LSUN, KPC_CM = 1.98841e33, 3.828e33, 3.085677581e21
ARCSEC = np.pi / (180 * 3600)

_WL_GRID = np.geomspace(1.0, 3000.0, 200)  # um, for luminosity integrals


def planck(nu: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Planck function B_nu(T) in erg/s/cm2/Hz/sr."""
    x = np.minimum(6.62607015e-27 * nu / (1.380649e-16 * t), 700.0)
    return 2 * _H * nu**3 / C_CGS**2 / np.expm1(x)


def greybody(wl_um, mass, t, beta, dist_kpc) -> np.ndarray:
    """Flux density (Jy) at ``wl_um`` of grey bodies of ``mass`` (Msun) at ``t`` (K), ``dist_kpc`` away."""
    nu = C_CGS / (np.asarray(wl_um) * 1e-4)
    kappa = 0.1 * (nu / 1e12) ** np.asarray(beta)
    return np.asarray(mass) * MSUN * kappa * planck(nu, np.asarray(t)) / (np.asarray(dist_kpc) * KPC_CM) ** 2 * 1e23


def greybody_luminosity(mass, t, beta) -> np.ndarray:
    """Luminosity (Lsun) of grey bodies, integrated over 1 um - 3 mm; arrays broadcast together."""
    mass, t, beta = np.broadcast_arrays(np.asarray(mass, float), np.asarray(t, float), np.asarray(beta, float))
    nu = C_CGS / (_WL_GRID * 1e-4)
    s = greybody(_WL_GRID, mass[..., None], t[..., None], beta[..., None], 1.0)  # Jy at 1 kpc
    flux = -np.trapezoid(s, nu, axis=-1) * 1e-23
    return 4 * np.pi * KPC_CM**2 * flux / LSUN
