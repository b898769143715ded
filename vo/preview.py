"""PNG quick-looks of datasets: the map of an image, the peak along the spectral axis of a cube.

:func:`cached_preview` makes the PNG on first request and keeps it under the cache directory,
keyed by the DID and the file's size and version (modification time, ETag), so a re-ingested
file gets a new preview. :func:`render_preview` reads only what the picture needs, from a
local path or an fsspec URL (:mod:`vo.storage`): the header through
``vo.ingest.datasets.read_header``, then a strided subsample of the pixels through astropy's
``section`` (memory-mapped or ranged reads, never the whole cube in memory). The stretch is asinh over the
0.5-99.5 percentile range (``astropy.visualization``), the colours viridis, and a colour bar
with the pixel unit sits on the right. Pillow draws everything; no matplotlib.

No HTTP and no SQL here: callers pass the file and the cache directory.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import math
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import structlog
from astropy.visualization import AsinhStretch, PercentileInterval
from astropy.wcs import WCS, FITSFixedWarning
from PIL import Image, ImageDraw, ImageFont
from psycopg_pool import AsyncConnectionPool

from vo import storage
from vo.caller import Caller
from vo.datalink import dataset_file
from vo.errors import FatalError
from vo.ingest.datasets import read_header

__all__ = ["PREVIEW_VERSION", "cached_preview", "forget_previews", "preview_dir", "preview_file", "render_preview"]

log = structlog.get_logger("vlkb.preview")

#: Bump when the picture changes, so cached previews are made again.
PREVIEW_VERSION = 1
#: Longest side of the map in the preview, pixels.
MAX_SIDE = 768
#: Smallest side: small maps are enlarged by whole factors up to this.
MIN_SIDE = 256
#: Channels of a cube read for its peak map, at most.
MAX_CHANNELS = 256

_BAR_WIDTH = 18
_MARGIN = 8
_LABEL_WIDTH = 78
_BACKGROUND = (255, 255, 255)
_BLANK = (200, 200, 200)
_TEXT = (20, 20, 20)

#: viridis at 0, 0.1, ..., 1 (the colour map's published anchor values).
_VIRIDIS = np.array([
    (0x44, 0x01, 0x54), (0x48, 0x24, 0x75), (0x41, 0x44, 0x87), (0x35, 0x5f, 0x8d), (0x2a, 0x78, 0x8e),
    (0x21, 0x91, 0x8c), (0x22, 0xa8, 0x84), (0x44, 0xbf, 0x70), (0x7a, 0xd1, 0x51), (0xbd, 0xdf, 0x26),
    (0xfd, 0xe7, 0x25),
], dtype=float)


def _lut() -> np.ndarray:
    x = np.linspace(0.0, 1.0, 256)
    anchors = np.linspace(0.0, 1.0, len(_VIRIDIS))
    return np.stack([np.interp(x, anchors, _VIRIDIS[:, c]) for c in range(3)], axis=1).round().astype(np.uint8)


_LUT = _lut()


def preview_dir(cache_dir: Path, did: str) -> Path:
    """The directory of ``did``'s cached previews: one per dataset, so withdrawing it can drop them
    without its file (which may be gone)."""
    return cache_dir / hashlib.sha256(did.encode()).hexdigest()[:32]


def forget_previews(cache_dir: Path, did: str) -> bool:
    """Remove every cached preview of ``did``; whether there was any."""
    folder = preview_dir(cache_dir, did)
    if not folder.exists():
        return False
    shutil.rmtree(folder)
    return True


def cached_preview(path: Path | str, did: str, cache_dir: Path) -> Path:
    """The PNG preview of the file at ``path`` (a path or URL; dataset ``did``), made now if not cached yet."""
    info = storage.file_info(str(path))
    key = hashlib.sha256(f"{did}\0{info.size}\0{info.version}\0{PREVIEW_VERSION}".encode()).hexdigest()
    folder = preview_dir(cache_dir, did)
    target = folder / f"{key[:40]}.png"
    if target.exists():
        return target
    png = render_preview(path)
    folder.mkdir(parents=True, exist_ok=True)
    # Written aside and renamed: a concurrent reader sees the whole file or none.
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(png)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _plane(path: Path | str) -> tuple[np.ndarray, str, bool]:
    """(the 2D picture as float64 with lat along rows, the pixel unit, whether it is a cube peak map)."""
    header, index = read_header(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs = WCS(header)
    naxis = int(header["NAXIS"])
    # FITS axis i (0-based) is numpy axis naxis - 1 - i
    lon = wcs.wcs.lng if wcs.has_celestial else 0
    lat = wcs.wcs.lat if wcs.has_celestial else 1
    spec = wcs.wcs.spec if wcs.wcs.spec >= 0 else None
    sizes = [int(header[f"NAXIS{i + 1}"]) for i in range(naxis)]
    step = max(1, math.ceil(max(sizes[lon], sizes[lat]) / MAX_SIDE))
    cube = spec is not None and sizes[spec] > 1
    cut: list[slice | int] = [0] * naxis
    cut[naxis - 1 - lon] = slice(None, None, step)
    cut[naxis - 1 - lat] = slice(None, None, step)
    if cube and spec is not None:  # (a cube has a spectral axis: said again for the type checker)
        cut[naxis - 1 - spec] = slice(None, None, max(1, math.ceil(sizes[spec] / MAX_CHANNELS)))
    # astropy's section reads a step along the fastest (last numpy) axis one value at a time:
    # read whole rows and take every step-th value here.
    last = cut[-1]
    cut[-1] = slice(None) if isinstance(last, slice) else last
    with storage.open_fits(str(path)) as hdul:  # memory-mapped (local, unless scaled) or ranged reads
        data = np.asarray(hdul[index].section[tuple(cut)], dtype=np.float64)
    if isinstance(last, slice):
        data = data[..., last]
    # the kept axes, in numpy order; put the spectral one first and lat before lon
    kept = [i for i in reversed(range(naxis)) if isinstance(cut[naxis - 1 - i], slice)]
    order = ([spec] if cube else []) + [lat, lon]
    data = np.transpose(data, [kept.index(i) for i in order])
    if cube:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN spectra give NaN, as they should
            data = np.nanmax(data, axis=0)
    return data, str(header.get("BUNIT", "")).strip(), cube


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (OSError, TypeError):  # Pillow built without FreeType: the bitmap font
        return ImageFont.load_default()


def render_preview(path: Path | str) -> bytes:
    """The PNG preview of the FITS dataset at ``path``."""
    data, unit, cube = _plane(path)
    finite = np.isfinite(data)
    if finite.any():
        vmin, vmax = PercentileInterval(99.0).get_limits(data[finite])
    else:
        vmin, vmax = 0.0, 1.0
    if not vmax > vmin:
        vmax = vmin + (abs(vmin) or 1.0)
    stretch = AsinhStretch(a=0.1)
    scaled = np.clip((np.where(finite, data, vmin) - vmin) / (vmax - vmin), 0.0, 1.0)
    index = np.round(stretch(scaled, clip=True) * 255).astype(np.uint8)
    rgb = _LUT[index]
    rgb[~finite] = _BLANK
    # FITS rows run upwards (FITS 4.0 section 8.2): the first row is the bottom of the picture
    rgb = rgb[::-1]
    picture = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    zoom = max(1, MIN_SIDE // max(1, min(picture.size)))
    if zoom > 1:
        picture = picture.resize((picture.width * zoom, picture.height * zoom), Image.Resampling.NEAREST)

    font = _font(12)
    width = picture.width + 3 * _MARGIN + _BAR_WIDTH + _LABEL_WIDTH
    height = picture.height + 2 * _MARGIN + 18 + 6  # room for the lowest colour-bar label
    canvas = Image.new("RGB", (width, height), _BACKGROUND)
    canvas.paste(picture, (_MARGIN, _MARGIN + 18))
    draw = ImageDraw.Draw(canvas)
    title = storage.name_of(str(path)) + (", peak along the spectral axis" if cube else "")
    title += f" [{unit}]" if unit else ""
    draw.text((_MARGIN, 3), title, fill=_TEXT, font=font)

    # colour bar: top = vmax, bottom = vmin, in the stretched scale
    top, bottom = _MARGIN + 18, _MARGIN + 18 + picture.height - 1
    x0 = picture.width + 2 * _MARGIN
    ramp = np.linspace(1.0, 0.0, bottom - top + 1)
    bar = np.repeat(_LUT[np.round(ramp * 255).astype(np.uint8)][:, None, :], _BAR_WIDTH, axis=1)
    canvas.paste(Image.fromarray(np.ascontiguousarray(bar), "RGB"), (x0, top))
    draw.rectangle((x0, top, x0 + _BAR_WIDTH - 1, bottom), outline=_TEXT)
    for t in np.linspace(0.0, 1.0, 5):
        value = vmin + (vmax - vmin) * float(stretch.inverse(np.array([t]))[0])
        y = bottom - t * (bottom - top)
        draw.line((x0 + _BAR_WIDTH, y, x0 + _BAR_WIDTH + 4, y), fill=_TEXT)
        draw.text((x0 + _BAR_WIDTH + 6, y - 6), f"{value:.3g}", fill=_TEXT, font=font)
    out = io.BytesIO()
    canvas.save(out, format="PNG")
    return out.getvalue()


async def preview_file(pool: AsyncConnectionPool, key: str, caller: Caller, cache_dir: Path) -> Path:
    """The PNG quick-look of the dataset of ``key`` (made on first request, then cached)."""
    ds, _ = await dataset_file(pool, key, caller)
    try:
        return await asyncio.to_thread(cached_preview, ds.path, ds.publisher_did, cache_dir)
    except Exception as exc:  # a file that cannot be drawn is our fault, not the caller's
        log.error("preview failed", did=ds.publisher_did, exc_info=exc)
        raise FatalError("cannot make a preview of this dataset") from None
