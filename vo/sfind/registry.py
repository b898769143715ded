"""The apps a site offers: one line per finder.

A containerised finder (CAESAR, CuTEx, an ML detector) is a class with the
:class:`~vo.sfind.finder.Finder` methods whose ``run`` writes the image file to the container's
input, runs it and reads back its component table; add it to :func:`finders`. Nothing else changes.
"""

from __future__ import annotations

from vo.errors import NotFoundError
from vo.sfind.aegean import AegeanFinder
from vo.sfind.finder import Finder
from vo.sfind.pybdsf import PyBdsfFinder

__all__ = ["find_app", "finders"]


def finders() -> dict[str, Finder]:
    """Every app by name."""
    apps: list[Finder] = [AegeanFinder(), PyBdsfFinder()]
    return {f.name: f for f in apps}


def find_app(name: str) -> Finder:
    """The app called ``name`` (case-insensitive); NotFoundError listing the apps otherwise."""
    apps = finders()
    found = apps.get(name.strip().lower())
    if found is None:
        raise NotFoundError(f"APP: no app called {name!r}; the apps are {', '.join(apps)}")
    return found
