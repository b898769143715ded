"""Routers are matched hot ones first (app/main.py); that is safe only while no two share a path.

Every route's first path segment is one of ``SERVICE_BASES`` or the ViaLactea path's, and the
ViaLactea path may not take one of the service's; so matching order changes no answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pytest
from pydantic import ValidationError

from app.main import create_app
from app.settings import SERVICE_BASES, Settings


def _paths(routes: Iterable[object]) -> Iterator[tuple[str, frozenset[str]]]:
    """(path, methods) of every route, through the included routers (FastAPI keeps them nested)."""
    for route in routes:
        nested = getattr(route, "effective_candidates", None)
        if nested is not None:
            yield from _paths(nested())
            continue
        original = getattr(route, "original_route", route)
        path = getattr(original, "path", None)
        if path is not None:
            yield path, frozenset(getattr(original, "methods", None) or ())


def _app_routes() -> list[tuple[str, frozenset[str]]]:
    return list(_paths(create_app(Settings(vialactea_path="/vlkb")).router.routes))


def test_every_route_is_under_a_base_of_its_own() -> None:
    routes = _app_routes()
    assert len(routes) > 100, routes  # the walk reached the included routers
    firsts = {path.strip("/").split("/", 1)[0] for path, _ in routes} - {""}
    assert firsts - SERVICE_BASES == {"vlkb"}


@pytest.mark.parametrize("path", ["/tap", "/soda/vl", "hips", "/moc/"])
def test_the_vialactea_path_may_not_take_a_base_of_the_service(path: str) -> None:
    with pytest.raises(ValidationError, match="a base of the service's own"):
        Settings(vialactea_path=path)


@pytest.mark.parametrize("path", ["/vlkb", "/ViaLactea/kb", ""])
def test_other_vialactea_paths_are_accepted(path: str) -> None:
    assert Settings(vialactea_path=path).vialactea_path == path

