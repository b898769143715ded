"""HiPS 1.0 of the service's 2D surveys: built from their datasets (:mod:`vo.hips.build`), served on
behalf of a caller (:mod:`vo.hips.serve`).

One HiPS per 2D sub-survey (a survey band, e.g. ``hi-gal-70um``), named by the sub-survey's slug
(:func:`vo.ingest.obscore.survey_slug`), in the Galactic frame, with FITS and PNG tiles. No HTTP
framework and no SQL here: datasets are read through :mod:`vo.caller`.
"""

from vo.hips.build import BuildReport, build_all, build_survey, hips_sources
from vo.hips.serve import VisibilityCache, blank_tile, hips_list, tile_file, visible_hips

__all__ = [
    "BuildReport", "VisibilityCache", "blank_tile", "build_all", "build_survey", "hips_list", "hips_sources",
    "tile_file", "visible_hips",
]
