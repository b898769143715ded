"""Deterministic demo data: surveys, FITS images and cubes, catalogues, filaments, SED models.

:func:`generate` writes the FITS files of every demo survey under ``data_dir/<survey slug>/``
and returns them with the catalogue tables, ready for :func:`vo.ingest.datasets.ingest_datasets`
and :func:`db.load.copy_columns`. Nothing is downloaded; the same seed gives the same bytes.
No database access here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from demo.images import write_survey
from demo.sedmodels import make_sed_models
from demo.sky import make_sky
from demo.structures import make_structures
from demo.surveys import DEMO_SURVEYS, Layout, Survey

__all__ = ["DEFAULT_SEED", "DemoData", "Layout", "Survey", "generate"]

#: The seed of the published demo.
DEFAULT_SEED = 20261124


@dataclass(frozen=True)
class DemoData:
    """What :func:`generate` made.

    ``files`` maps each survey to its FITS files; ``tables`` maps a qualified published table
    name (``compactsources.band70um``) to its columns, each a numpy array or a list of str.
    Absent values are NaN (numbers) or None; absent band designations are ``missing``.
    """

    surveys: tuple[Survey, ...]
    files: dict[Survey, list[Path]]
    tables: dict[str, Mapping[str, np.ndarray | list]]

    def row_counts(self) -> dict[str, int]:
        """Rows per table."""
        return {name: len(next(iter(cols.values()))) for name, cols in self.tables.items()}


def generate(data_dir: Path, *, scale: int = 1, seed: int = DEFAULT_SEED) -> DemoData:
    """Write the demo FITS files under ``data_dir`` and build the catalogue tables.

    ``scale`` multiplies the numbers of catalogue sources, filaments and bubbles (the images keep
    their size; they get denser). Existing files of the same name are overwritten.
    """
    if scale < 1:
        raise ValueError("scale must be a positive integer")
    data_dir = Path(data_dir)
    structures = make_structures(seed, scale)
    sky = make_sky(seed, scale, structures)
    files = {survey: write_survey(data_dir, survey, layout, sky, structures, seed) for survey, layout in DEMO_SURVEYS}
    tables: dict[str, Mapping[str, np.ndarray | list]] = {
        **sky.tables, **structures.tables, "compactsources.sed_models": make_sed_models(),
    }
    return DemoData(surveys=tuple(s for s, _ in DEMO_SURVEYS), files=files, tables=tables)
