"""The PyBDSF app (``bdsf``, Mohan & Rafferty 2015): islands of emission decomposed into Gaussians.

PyBDSF reads a FITS file and computes its own background (``mean``) and noise (``rms``) maps with a
sliding box; its Gaussian list is the component table. Positions come back in the image's own
celestial frame (PyBDSF's ``centre_sky`` is the image WCS's world coordinates), sizes as FWHM in
degrees. Plotting is off and it runs on one core: tiles are the unit of parallelism.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np

from vo.errors import UsageError
from vo.sfind.finder import Components, FinderImage, FinderOutput
from vo.sfind.options import Option, OptionValue

__all__ = ["PyBdsfFinder"]

_OPTIONS = (
    Option("thresh_pix", "float", 5.0, "source detection threshold: island peaks must be this many sigma above "
           "the mean", min=1.0, max=1000.0, unit="sigma"),
    Option("thresh_isl", "float", 3.0, "island boundary threshold", min=0.5, max=1000.0, unit="sigma"),
    Option("rms_box", "int", 0, "size of the box for the rms and mean maps (0: PyBDSF chooses)", min=0, max=2000,
           unit="pixel", advanced=True),
    Option("rms_step", "int", 0, "step of the box for the rms and mean maps (0: a third of the box)", min=0,
           max=1000, unit="pixel", advanced=True),
    Option("group_by_isl", "bool", False, "group all Gaussians of an island into one source", advanced=True),
    Option("flag_maxsize_bm", "float", 25.0, "flag Gaussians larger than this many beam areas", min=1.0,
           max=10000.0, unit="beam", advanced=True),
)


class PyBdsfFinder:
    """PyBDSF (bdsf)."""

    name = "pybdsf"
    title = "PyBDSF (bdsf): island decomposition into Gaussians over sliding-box rms and mean maps"

    def version(self) -> str:
        import bdsf

        return f"bdsf {bdsf.__version__}"

    def options(self) -> Sequence[Option]:
        return _OPTIONS

    def run(self, image: FinderImage, options: Mapping[str, OptionValue]) -> FinderOutput:
        import bdsf

        box, step = int(options["rms_box"]), int(options["rms_step"])
        extra: dict[str, object] = {}
        if box:
            extra["rms_box"] = (box, step or max(1, box // 3))
        h = image.header
        frequency = h.get("FREQ") or h.get("RESTFRQ") or (2.998e8 / h["WAVELENG"] if "WAVELENG" in h else 1e9)
        logging.getLogger("PyBDSF").setLevel(logging.ERROR)
        try:
            img = bdsf.process_image(
                str(image.path), beam=image.beam, frequency=float(frequency), thresh="hard",
                thresh_pix=float(options["thresh_pix"]), thresh_isl=float(options["thresh_isl"]),
                group_by_isl=bool(options["group_by_isl"]), flag_maxsize_bm=float(options["flag_maxsize_bm"]),
                quiet=True, ncores=1, plot_allgaus=False, output_all=False, debug=False,
                outfile=str(image.workdir / "pybdsf"), **extra)
        except RuntimeError as exc:  # PyBDSF's own refusals of an image (e.g. blank, no noise)
            raise UsageError(f"ID: PyBDSF cannot search this image: {exc}") from None
        gaussians = list(getattr(img, "gaussians", []) or [])
        rows = [{
            "lon": g.centre_sky[0], "lat": g.centre_sky[1], "err_lon": g.centre_skyE[0],
            "err_lat": g.centre_skyE[1], "peak": g.peak_flux, "err_peak": g.peak_fluxE, "flux": g.total_flux,
            "err_flux": g.total_fluxE, "a": g.size_sky[0] * 3600, "b": g.size_sky[1] * 3600, "pa": g.size_sky[2],
            "local_rms": g.rms, "background": g.mean, "flags": g.flag,
        } for g in gaussians]
        comps = Components.from_rows(rows)
        mean = getattr(img, "mean_arr", None)
        rms = getattr(img, "rms_arr", None)
        resid = getattr(img, "resid_gaus_arr", None)

        def plane(a: object) -> np.ndarray | None:
            # PyBDSF keeps maps as (x, y): transpose back to the FITS (y, x) order
            return None if a is None else np.asarray(a, dtype=np.float32).squeeze().T

        return FinderOutput(comps, background=plane(mean), rms=plane(rms), residual=plane(resid))
