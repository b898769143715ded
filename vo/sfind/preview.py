"""The preview: a PNG of the (first) image searched with the detections drawn, axes labelled in
the image's celestial frame (Galactic for the surveys here), made with matplotlib's WCSAxes.

A :class:`matplotlib.figure.Figure` is built directly (no pyplot: no global figure state in a
worker thread) and rendered with the Agg canvas.
"""

from __future__ import annotations

import io

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

__all__ = ["preview_png"]


def preview_png(data: np.ndarray, header: fits.Header, lon: np.ndarray, lat: np.ndarray, a: np.ndarray,
                b: np.ndarray, pa: np.ndarray, title: str) -> bytes:
    """``data`` with an ellipse per detection (``lon``/``lat`` in the image's frame, deg; ``a``/``b``
    FWHM arcsec; ``pa`` deg from north through east)."""
    from astropy.visualization import AsinhStretch, ImageNormalize, PercentileInterval
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import EllipseCollection
    from matplotlib.figure import Figure

    wcs = WCS(header).celestial
    fig = Figure(figsize=(7.5, 6.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(projection=wcs)
    finite = np.isfinite(data)
    norm = ImageNormalize(data[finite] if finite.any() else np.zeros(1), interval=PercentileInterval(99.5),
                          stretch=AsinhStretch(0.05))
    ax.imshow(np.where(finite, data, np.nan), origin="lower", cmap="gray_r", norm=norm)
    frame = wcs.wcs.ctype[0][:4]
    names = {"GLON": ("Galactic longitude", "Galactic latitude"), "RA--": ("Right ascension", "Declination")}
    xl, yl = names.get(frame, (wcs.wcs.ctype[0], wcs.wcs.ctype[1]))
    ax.coords[0].set_axislabel(xl)
    ax.coords[1].set_axislabel(yl)
    ax.set_title(title, fontsize=9)
    if len(lon):
        x, y = wcs.world_to_pixel_values(lon, lat)
        scale = abs(float(wcs.proj_plane_pixel_scales()[1].to_value("deg"))) * 3600
        # one collection, not a patch per component: drawing cost stays flat with many detections
        ax.add_collection(EllipseCollection(
            np.maximum(b, 1) / scale, np.maximum(a, 1) / scale, np.asarray(pa, dtype=float), units="xy",
            offsets=np.column_stack([x, y]), offset_transform=ax.transData, facecolors="none",
            edgecolors="tab:red", linewidths=0.8))
    ax.set_xlim(-0.5, data.shape[1] - 0.5)
    ax.set_ylim(-0.5, data.shape[0] - 0.5)
    buf = io.BytesIO()
    # zlib level 1: the PNG of an image with noise hardly shrinks with more effort, and level 6 costs a third
    # of the preview's time
    fig.savefig(buf, format="png", pil_kwargs={"compress_level": 1})
    return buf.getvalue()
