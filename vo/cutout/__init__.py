"""The cutout engine, with no HTTP and no SQL: a region in, the pixel slab of a FITS file out.

``bounds`` turns a :class:`CutRequest` (sky region, BAND, VELO, TIME, POL, PIXELS) into a pixel
box from the header alone; ``fitsout`` plans the output header and streams the slab, read
memory-mapped so only the needed pages of the file are touched; ``source`` reads slabs of URLs
(fsspec ranged reads) and compressed files; ``merge`` combines the cuts of several datasets
on one grid.
"""

from vo.cutout.bounds import CutRequest, NoOverlapError, pixel_box
from vo.cutout.fitsout import Cutout, plan

__all__ = ["CutRequest", "Cutout", "NoOverlapError", "pixel_box", "plan"]
