"""BANE's background and noise maps of one image, shared by the apps that use them.

Aegean reads them as ``bkgin``/``rmsin``; PyBDSF searches the background-subtracted image
against BANE's noise (see :mod:`vo.sfind.pybdsf` for why). One core per run: tiles are the
unit of parallelism (the job engine's workers), not BANE's own process pool.
"""

from __future__ import annotations

import numpy as np

from vo.errors import UsageError
from vo.sfind.finder import FinderImage

__all__ = ["bane_maps"]


def bane_maps(image: FinderImage, *, grid: int = 0, box: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(background, rms) of ``image`` as float32 maps of its shape; ``grid``/``box`` in pixels,
    0 for BANE's own choice from the beam (grid about 4 beams, box 6 grids)."""
    from AegeanTools import BANE

    bkg, rms = BANE.filter_image(str(image.path), None, step_size=(grid, grid) if grid else None,
                                 box_size=(box, box) if box else None, cores=1, nslice=1)
    if not np.isfinite(rms).any() or np.nanmax(rms) <= 0:
        raise UsageError("ID: the image has no usable pixels (the noise could not be measured)")
    return bkg.astype(np.float32), rms.astype(np.float32)
