"""Postage stamps and stacked postage stamps (issue 19): many sources x many surveys, one unit, one grid.

``coverage`` resolves survey names and finds the datasets meeting a stamp, for a caller (the
seam, :mod:`vo.caller`); ``stamp`` makes one stamp (cut or merge, moment 0, window, units,
background, beam, grid); ``units`` holds the brightness relations; ``stack`` combines stamps;
``params`` reads a request; ``sources`` reads a table or an ADQL query's rows; ``output``
writes FITS files and the manifest; ``sync`` answers ``/stamps/sync``. The async runner is
``vo/jobs/stamps.py``. No HTTP here.
"""

#: the standardIDs of the stamps service's capabilities (not IVOA standards: vlkb's own, documented in
#: docs/stamps.md), in VOSI capabilities (``/stamps/capabilities``) and the registry's service record
STD_STAMPS_SYNC = "ivo://vlkb/std/stamps#sync-1.0"
STD_STAMPS_ASYNC = "ivo://vlkb/std/stamps#async-1.0"
