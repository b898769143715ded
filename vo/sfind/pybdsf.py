"""The PyBDSF app (``bdsf``, Mohan & Rafferty 2015): islands of emission decomposed into Gaussians.

PyBDSF reads a FITS file; its Gaussian list is the component table.

The background: PyBDSF is built for interferometric images whose mean is about zero. Its fits
subtract one constant mean per island while its thresholds add the mean again (``gausfit.py``:
``thr = isl.mean + thresh_isl * isl.rms`` against ``image - islmean``), and on a small region it
falls back to one constant rms for the whole image. The demo's Galactic-plane images (and real
single-dish or short-spacing ones) sit on smooth emission of 10 to 20 sigma: there the constant rms
came out 2.9 times the true noise, sources of S/N 10 were missed and fits took in the pedestal
(integrated fluxes 1.33 times the truth). So by default (``background=bane``) the image PyBDSF
searches is the image minus BANE's background, with BANE's noise map and a zero mean given as
PyBDSF's ``rmsmean_map_filename``; ``background=pybdsf`` keeps PyBDSF's own sliding-box maps
(``rms_box``, ``rms_step``) for zero-mean images. Positions come back in the image's own
celestial frame (PyBDSF's ``centre_sky`` is the image WCS's world coordinates), sizes as FWHM in
degrees. Plotting is off and it runs on one core: tiles are the unit of parallelism.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence

import numpy as np
from astropy.io import fits

from vo.errors import UsageError
from vo.sfind.bane import bane_maps
from vo.sfind.finder import Components, FinderImage, FinderOutput
from vo.sfind.options import Option, OptionValue
from vo.sfind.threads import one_core

__all__ = ["PyBdsfFinder"]

_OPTIONS = (
    Option("thresh_pix", "float", 5.0, "source detection threshold: island peaks must be this many sigma above "
           "the mean", min=1.0, max=1000.0, unit="sigma"),
    Option("thresh_isl", "float", 3.0, "island boundary threshold", min=0.5, max=1000.0, unit="sigma"),
    Option("background", "str", "bane", "background and noise maps: 'bane' (BANE's maps, the background "
           "subtracted before the search: for images on diffuse emission) or 'pybdsf' (PyBDSF's own sliding box, "
           "for zero-mean interferometric images)", allowed=("bane", "pybdsf")),
    Option("box_size", "int", 0, "with background=bane: BANE box size in pixels (0: 6 times the grid)", min=0,
           max=2000, unit="pixel", advanced=True),
    Option("grid_size", "int", 0, "with background=bane: BANE grid step in pixels (0: about 4 beams)", min=0,
           max=500, unit="pixel", advanced=True),
    Option("rms_box", "int", 0, "with background=pybdsf: size of the box for the rms and mean maps (0: PyBDSF "
           "chooses)", min=0, max=2000, unit="pixel", advanced=True),
    Option("rms_step", "int", 0, "step of the box for the rms and mean maps (0: a third of the box)", min=0,
           max=1000, unit="pixel", advanced=True),
    Option("group_by_isl", "bool", False, "group all Gaussians of an island into one source", advanced=True),
    Option("flag_maxsize_bm", "float", 25.0, "flag Gaussians larger than this many beam areas", min=1.0,
           max=10000.0, unit="beam", advanced=True),
)


class PyBdsfFinder:
    """PyBDSF (bdsf)."""

    name = "pybdsf"
    title = "PyBDSF (bdsf): island decomposition into Gaussians, over BANE or sliding-box background and noise"

    def version(self) -> str:
        import bdsf

        return f"bdsf {bdsf.__version__}"

    def options(self) -> Sequence[Option]:
        return _OPTIONS

    def run(self, image: FinderImage, options: Mapping[str, OptionValue]) -> FinderOutput:
        import bdsf  # noqa: F401  (its OpenMP and BLAS loaded before the limit below)
        from AegeanTools import BANE  # noqa: F401

        # one BLAS/OpenMP thread, as Aegean (vo/sfind/threads.py): tiles are the unit of parallelism
        with one_core():
            return self._run(image, options)

    def _run(self, image: FinderImage, options: Mapping[str, OptionValue]) -> FinderOutput:
        import bdsf

        extra: dict[str, object] = {}
        path, bkg = image.path, None
        steps: dict[str, float] = {}  # seconds of each step, for the report
        if options["background"] == "bane":
            t0 = time.perf_counter()
            bkg, rms = bane_maps(image, grid=int(options["grid_size"]), box=int(options["box_size"]))
            steps["bane_s"] = time.perf_counter() - t0
            path = image.workdir / "image-bkg.fits"
            fits.PrimaryHDU(image.data - bkg, image.header).writeto(path, overwrite=True)
            fits.PrimaryHDU(np.zeros_like(rms), image.header).writeto(image.workdir / "zero.fits", overwrite=True)
            fits.PrimaryHDU(rms, image.header).writeto(image.workdir / "rms.fits", overwrite=True)
            # PyBDSF joins these names to the image's directory; its box must be under a quarter of the
            # image or it ignores any map and takes one constant rms (rmsimage.py), so give a small one
            quarter = max(1, min(image.data.shape) // 4 - 1)
            extra.update(rmsmean_map_filename=["zero.fits", "rms.fits"], rms_map=True, mean_map="zero",
                         rms_box=(quarter, max(1, quarter // 3)))
        elif (box := int(options["rms_box"])):
            extra["rms_box"] = (box, int(options["rms_step"]) or max(1, box // 3))
        h = image.header
        frequency = h.get("FREQ") or h.get("RESTFRQ") or (2.998e8 / h["WAVELENG"] if "WAVELENG" in h else 1e9)
        logging.getLogger("PyBDSF").setLevel(logging.ERROR)
        t0 = time.perf_counter()
        try:
            img = bdsf.process_image(
                str(path), beam=image.beam, frequency=float(frequency), thresh="hard",
                thresh_pix=float(options["thresh_pix"]), thresh_isl=float(options["thresh_isl"]),
                group_by_isl=bool(options["group_by_isl"]), flag_maxsize_bm=float(options["flag_maxsize_bm"]),
                quiet=True, ncores=1, plot_allgaus=False, output_all=False, debug=False,
                outfile=str(image.workdir / "pybdsf"), **extra)
        except RuntimeError as exc:  # PyBDSF's own refusals of an image (e.g. blank, no noise)
            raise UsageError(f"ID: PyBDSF cannot search this image: {exc}") from None
        steps["find_fit_s"] = time.perf_counter() - t0
        gaussians = list(getattr(img, "gaussians", []) or [])
        rows = [{
            "lon": g.centre_sky[0], "lat": g.centre_sky[1], "err_lon": g.centre_skyE[0],
            "err_lat": g.centre_skyE[1], "peak": g.peak_flux, "err_peak": g.peak_fluxE, "flux": g.total_flux,
            "err_flux": g.total_fluxE, "a": g.size_sky[0] * 3600, "b": g.size_sky[1] * 3600, "pa": g.size_sky[2],
            "local_rms": g.rms, "background": g.mean, "flags": g.flag,
        } for g in gaussians]
        comps = Components.from_rows(rows)
        mean = getattr(img, "mean_arr", None)
        rms_arr = getattr(img, "rms_arr", None)
        resid = getattr(img, "resid_gaus_arr", None)

        def plane(a: object) -> np.ndarray | None:
            # PyBDSF keeps maps as (x, y): transpose back to the FITS (y, x) order
            return None if a is None else np.asarray(a, dtype=np.float32).squeeze().T

        return FinderOutput(comps, background=bkg if bkg is not None else plane(mean), rms=plane(rms_arr),
                            residual=plane(resid), notes={"steps": {k: round(v, 3) for k, v in steps.items()}})
