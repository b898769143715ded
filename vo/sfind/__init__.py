"""Source finding as a service: finders as apps behind one small interface, and the engine that
runs them over archived datasets (read through the caller's seam), stitches tiles and cross-matches.

- :mod:`vo.sfind.options` and :mod:`vo.sfind.finder`: the interface (options, image in, components out);
- :mod:`vo.sfind.aegean`, :mod:`vo.sfind.pybdsf`: the apps; :mod:`vo.sfind.registry`: which a site offers;
- :mod:`vo.sfind.params`, :mod:`vo.sfind.image`, :mod:`vo.sfind.run`, :mod:`vo.sfind.stitch`,
  :mod:`vo.sfind.xmatch`: the engine; :mod:`vo.sfind.catalog`, :mod:`vo.sfind.preview`: its outputs;
- :mod:`vo.sfind.describe`: the documents of ``/sfind/apps``.

No HTTP here; the job runner is :mod:`vo.jobs.sfind`.
"""
