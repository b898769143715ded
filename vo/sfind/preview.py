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
    from matplotlib.figure import Figure
    from matplotlib.patches import Ellipse

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
        for xi, yi, ai, bi, pi in zip(x, y, a, b, pa, strict=True):
            ax.add_patch(Ellipse((xi, yi), width=max(bi, 1) / scale, height=max(ai, 1) / scale, angle=pi,
                                 fill=False, edgecolor="tab:red", linewidth=0.8))
    ax.set_xlim(-0.5, data.shape[1] - 0.5)
    ax.set_ylim(-0.5, data.shape[0] - 0.5)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
