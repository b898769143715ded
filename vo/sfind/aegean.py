"""The Aegean app: BANE for the background and noise maps, then Aegean's island fitting.

AegeanTools (Hancock et al. 2012, 2018) reads FITS files, so the engine hands it the image
file of :class:`~vo.sfind.finder.FinderImage`; BANE's maps are written next to it and given to
Aegean as ``bkgin``/``rmsin``. One core per run: tiles are the unit of parallelism (the job
engine's workers), not the finder's own process pool.
"""

from __future__ import annotations

import logging
import time
import types
from collections.abc import Mapping, Sequence

import numpy as np
from astropy.io import fits

from vo.sfind.bane import bane_maps
from vo.sfind.finder import Components, FinderImage, FinderOutput
from vo.sfind.options import Option, OptionValue
from vo.sfind.threads import one_core

__all__ = ["AegeanFinder"]

_OPTIONS = (
    Option("innerclip", "float", 5.0, "seed threshold: an island starts at a pixel this many sigma above the "
           "background", min=1.0, max=1000.0, unit="sigma"),
    Option("outerclip", "float", 4.0, "flood threshold: an island grows over pixels this many sigma above the "
           "background", min=0.5, max=1000.0, unit="sigma"),
    Option("max_summits", "int", 0, "fit at most this many components per island (0: no limit)", min=0, max=100,
           advanced=True),
    Option("box_size", "int", 0, "BANE box size in pixels for the background and noise (0: 6 times the grid, "
           "about 30 beams)", min=0, max=2000, unit="pixel", advanced=True),
    Option("grid_size", "int", 0, "BANE grid step in pixels (0: from the beam, about 4 beams)", min=0, max=500,
           unit="pixel", advanced=True),
    Option("docov", "bool", True, "use the noise covariance of the beam in the fits (better errors, slower)",
           advanced=True),
    Option("negative", "bool", False, "also report negative components"),
)


def _numpy_compat() -> None:
    # AegeanTools 2.3.5 names np.linalg.linalg.LinAlgError in an except clause; numpy 2.4 removed that
    # alias, so the clause itself raises when a covariance matrix is singular. Give it the alias back.
    if not hasattr(np.linalg, "linalg"):
        np.linalg.linalg = types.SimpleNamespace(LinAlgError=np.linalg.LinAlgError)  # type: ignore[attr-defined]


class AegeanFinder:
    """Aegean with BANE (AegeanTools)."""

    name = "aegean"
    title = "Aegean (AegeanTools): Gaussian fits of islands over BANE background and noise maps"

    def version(self) -> str:
        import AegeanTools

        return f"AegeanTools {AegeanTools.__version__}"

    def options(self) -> Sequence[Option]:
        return _OPTIONS

    def run(self, image: FinderImage, options: Mapping[str, OptionValue]) -> FinderOutput:
        from AegeanTools import BANE, AeRes, source_finder  # noqa: F401  (loaded before the limit below)

        # one BLAS/OpenMP thread: the fits' many small matrix inversions ran up to 8 times as long with a
        # thread per core on the shared machine, and longest inside the service (vo/sfind/threads.py)
        with one_core():
            return self._run(image, options)

    def _run(self, image: FinderImage, options: Mapping[str, OptionValue]) -> FinderOutput:
        from AegeanTools.AeRes import make_model
        from AegeanTools.source_finder import SourceFinder

        _numpy_compat()
        # seconds of each step, kept in the report: the service's overhead is found by comparing them
        steps: dict[str, float] = {}
        t0 = time.perf_counter()
        bkg, rms = bane_maps(image, grid=int(options["grid_size"]), box=int(options["box_size"]))
        steps["bane_s"] = time.perf_counter() - t0
        bkg_path, rms_path = image.workdir / "bkg.fits", image.workdir / "rms.fits"
        fits.PrimaryHDU(bkg, image.header).writeto(bkg_path, overwrite=True)
        fits.PrimaryHDU(rms, image.header).writeto(rms_path, overwrite=True)
        t0 = time.perf_counter()
        finder = SourceFinder(log=logging.getLogger("vlkb.sfind.aegean"))
        summits = int(options["max_summits"]) or None
        found = finder.find_sources_in_image(
            str(image.path), cores=1, rmsin=str(rms_path), bkgin=str(bkg_path), innerclip=float(options["innerclip"]),
            outerclip=float(options["outerclip"]), max_summits=summits, docov=bool(options["docov"]),
            nonegative=not options["negative"], progress=False)
        steps["find_fit_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        rows = [{
            "lon": c.ra, "lat": c.dec, "err_lon": c.err_ra, "err_lat": c.err_dec, "peak": c.peak_flux,
            "err_peak": c.err_peak_flux, "flux": c.int_flux, "err_flux": c.err_int_flux, "a": c.a, "b": c.b,
            "pa": c.pa, "local_rms": c.local_rms, "background": c.background, "flags": c.flags,
        } for c in found]
        comps = Components.from_rows(rows)
        for f in ("err_lon", "err_lat", "err_peak", "err_flux"):
            col = getattr(comps, f)
            col[col < 0] = np.nan  # Aegean writes -1 for an error it could not measure
        residual = None
        if finder.wcshelper is not None:
            model = make_model(found, image.data.shape, finder.wcshelper)
            residual = (image.data - bkg - model).astype(np.float32)
        steps["model_s"] = time.perf_counter() - t0
        return FinderOutput(comps, background=bkg, rms=rms, residual=residual,
                            notes={"steps": {k: round(v, 3) for k, v in steps.items()}})
