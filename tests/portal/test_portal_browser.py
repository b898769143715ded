"""The portal in a real browser: Debian's chromium, headless, driven by Playwright for Python.

No browser is downloaded: Playwright launches ``/usr/bin/chromium`` (``make setup`` installs it).
Every request the page makes is watched; one that leaves the service is recorded and refused, and
fails the test. Expected values come from the database read as its owner (pgSphere) or from the demo
files, never from the portal's own earlier answers. Screenshots are kept in ``VLKB_TEST_ARTEFACTS``
(default: the test's temporary directory) for a human to look at.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psycopg
import pytest
from PIL import Image

from app.dev_issuer import mint
from app.settings import Settings
from tests.app.test_cli_errors import run_vlkb

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
PUBLIC, PRIVATE = "hi-gal-70um", "meerkat-private-1284mhz"
#: Aladin Lite's background colour: what a view without any HiPS pixel shows
BACKGROUND = (60, 60, 60)


@pytest.fixture(scope="module")
def built(database) -> None:
    for slug in (PUBLIC, PRIVATE):
        run = run_vlkb("hips", "build", slug, VLKB_HOME=str(database.home), VLKB_DB_PORT=str(database.port))
        assert run.returncode == 0, run.stderr


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory) -> Path:
    where = os.environ.get("VLKB_TEST_ARTEFACTS")
    path = Path(where) / "portal" if where else tmp_path_factory.mktemp("portal-screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make setup installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@dataclass
class Visit:
    """A page of the portal with what it logged and every request it tried to send elsewhere."""

    page: object
    errors: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)


@pytest.fixture()
def visit(browser, server, built) -> Iterator:
    contexts = []

    def open_portal(fragment: str = "sky", token: str | None = None) -> Visit:
        ctx = browser.new_context(viewport={"width": 1400, "height": 900})
        contexts.append(ctx)
        if token:
            ctx.add_init_script(f"sessionStorage.setItem('vlkb.token', {token!r})")
        page = ctx.new_page()
        v = Visit(page)
        page.on("console", lambda m: v.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: v.errors.append(f"uncaught: {e}"))

        def guard(route) -> None:
            url = route.request.url
            if url.startswith(server.url) or url.startswith(("data:", "blob:")):
                route.continue_()
            else:
                v.outside.append(url)
                route.abort()

        page.route("**/*", guard)
        page.goto(f"{server.url}/#{fragment}")
        return v

    yield open_portal
    for ctx in contexts:
        ctx.close()


def _sky_ready(page) -> None:
    """Wait until the overlays of the first view are loaded (and not being reloaded after a late move event)."""
    ready = "() => document.getElementById('sky-status').dataset.ready === 'yes'"
    page.wait_for_function(ready, timeout=60_000)
    page.wait_for_timeout(1000)  # the move events' debounce is 400 ms
    page.wait_for_function(ready, timeout=60_000)


def _view_pixels(page) -> np.ndarray:
    uri = page.evaluate("async () => await window.vlkbPortal.aladin.getViewDataURL({format: 'image/png'})")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB"))


def test_portal_loads_with_no_console_error_and_no_outside_request(visit, artefacts) -> None:
    v = visit()
    _sky_ready(v.page)
    v.page.wait_for_timeout(3000)  # tiles of the first view
    v.page.screenshot(path=str(artefacts / "sky.png"))
    assert v.errors == []
    assert v.outside == []
    # the landing page's links are still there (server-rendered)
    hrefs = v.page.eval_on_selector_all("#tab-about a", "els => els.map(e => e.getAttribute('href'))")
    assert any(h.endswith("/tap") for h in hrefs) and any(h.endswith("/hips/list") for h in hrefs)


def test_hips_background_draws(visit, artefacts) -> None:
    v = visit()
    _sky_ready(v.page)
    # overlays off, so the pixels are the HiPS's alone
    v.page.uncheck("#show-footprints")
    v.page.select_option("#catalogue-select", "")
    v.page.wait_for_timeout(4000)
    pixels = _view_pixels(v.page)
    Image.fromarray(pixels).save(artefacts / "hips-only.png")
    differs = np.any(np.abs(pixels.astype(int) - BACKGROUND) > 8, axis=-1)
    # the Hi-GAL 70 um mosaic (about 1.5 x 1.2 deg) fills a good part of the 2.5 deg view
    assert differs.mean() > 0.2, differs.mean()
    assert pixels.std() > 10


def _circle(page) -> tuple[float, float, float]:
    return tuple(page.evaluate("() => { const a = window.vlkbPortal.aladin; const [ra, dec] = a.getRaDec(); "
                               "const [w, h] = a.getFov(); return [ra, dec, Math.min(Math.max(w, h) * 0.75, 5)]; }"))


def test_footprints_and_catalogue_markers_for_the_demo_region(visit, database, artefacts) -> None:
    v = visit()
    _sky_ready(v.page)
    ra, dec, r = _circle(v.page)
    circle = "scircle(spoint(radians(%s), radians(%s)), radians(%s))"
    with psycopg.connect(database.url) as c:
        datasets = c.execute(f"SELECT count(*) FROM ivoa.obscore WHERE s_region && {circle} "
                             "AND obs_collection <> 'MeerKAT-private'", (ra, dec, r)).fetchone()[0]
        sources = c.execute(f"SELECT count(*) FROM compactsources.band70um WHERE pos <@ {circle}",
                            (ra, dec, r)).fetchone()[0]
    state = v.page.evaluate("() => ({fp: window.vlkbPortal.footprints, src: window.vlkbPortal.sources})")
    assert datasets > 0 and state["fp"] == datasets
    assert sources > 0 and state["src"] == min(sources, 3000)
    legend = v.page.text_content("#footprint-legend")
    assert "Hi-GAL" in legend and "MeerKAT" not in legend
    v.page.screenshot(path=str(artefacts / "footprints-and-sources.png"))


def test_adql_console_runs_an_example_and_shows_its_rows(visit, database, artefacts) -> None:
    v = visit("adql")
    v.page.wait_for_function("() => document.querySelectorAll('#adql-examples option').length > 1", timeout=30_000)
    v.page.select_option("#adql-examples", label="The brightest sources at 500 µm")
    v.page.click("#adql-run")
    v.page.wait_for_function("() => document.getElementById('adql-status').dataset.rows !== undefined",
                             timeout=60_000)
    with psycopg.connect(database.url) as c:
        brightest = [r[0] for r in c.execute("SELECT designation FROM compactsources.band500um "
                                             "ORDER BY flux DESC LIMIT 20")]
    shown = v.page.eval_on_selector_all("#adql-table tbody tr", "rows => rows.map(r => r.cells[0].textContent)")
    assert shown == brightest
    v.page.screenshot(path=str(artefacts / "adql.png"))
    # an error is shown as the service words it, where it is
    v.page.fill("#adql-query", "SELECT FROM compactsources.band500um")
    v.page.click("#adql-run")
    v.page.wait_for_selector("#adql-error:not([hidden])", timeout=30_000)
    assert "line 1" in v.page.text_content("#adql-error")
    assert v.outside == []


def test_cube_channel_map_changes_with_the_slider(visit, artefacts) -> None:
    v = visit("cube")
    v.page.wait_for_function("() => window.vlkbCube && window.vlkbCube.drawn > 0", timeout=60_000)
    first = v.page.evaluate("() => window.vlkbCube.lastSum")
    v.page.eval_on_selector("#cube-velocity", "e => { e.value = 5; e.dispatchEvent(new Event('input')); }")
    v.page.wait_for_function("() => window.vlkbCube.drawn > 1", timeout=60_000)
    v.page.wait_for_timeout(300)
    assert v.page.evaluate("() => window.vlkbCube.lastSum") != first
    v.page.screenshot(path=str(artefacts / "cube.png"))
    assert v.errors == [] and v.outside == []


def _hips_options(page) -> list[str]:
    page.wait_for_function("() => document.querySelectorAll('#hips-select option').length > 0", timeout=60_000)
    return page.eval_on_selector_all("#hips-select option", "els => els.map(e => e.value.split('/').pop())")


def _status_of(page, path: str) -> int:
    return page.evaluate("async (p) => { const t = sessionStorage.getItem('vlkb.token'); "
                         "const r = await fetch(p, {headers: t ? {Authorization: 'Bearer ' + t} : {}}); "
                         "return r.status; }", path)


def test_restricted_hips_is_absent_anonymously_and_present_with_a_group_token(visit, server) -> None:
    anonymous = visit()
    assert PUBLIC in _hips_options(anonymous.page) and PRIVATE not in _hips_options(anonymous.page)
    assert _status_of(anonymous.page, f"/hips/{PRIVATE}/properties") == 404
    assert _status_of(anonymous.page, f"/hips/{PRIVATE}/Norder3/Allsky.png") == 404
    token = mint(Settings(home=server.env["VLKB_HOME"]), "portal-member", ("survey-team",))
    member = visit(token=token)
    assert PRIVATE in _hips_options(member.page)
    assert _status_of(member.page, f"/hips/{PRIVATE}/properties") == 200
    assert member.page.text_content("#who") == "portal-member"



#: sed_view_final's flux columns (the SED's bands)
SED_BANDS = ("2m_k", "34", "46", "12", "22", "24", "70", "160", "250", "350", "500", "870", "1100")


def test_clicking_a_source_shows_its_row_and_sed(visit, database, artefacts) -> None:
    v = visit()
    _sky_ready(v.page)
    shown = v.page.evaluate("() => window.vlkbPortal.catalogue.getSources().map((s) => s.data.designation)")
    with psycopg.connect(database.url) as c:
        # the brightest 70 um source on the map that has a band-merged SED
        designation = c.execute(
            "SELECT b.designation FROM compactsources.band70um b JOIN compactsources.sed_view_final s "
            "ON s.designation70 = b.designation WHERE b.designation = ANY(%s) ORDER BY b.flux DESC LIMIT 1",
            (shown,)).fetchone()[0]
        fluxes = c.execute(f"SELECT {', '.join(f'flux{b}' for b in SED_BANDS)} FROM compactsources.sed_view_final "
                           "WHERE designation70 = %s", (designation,)).fetchone()
    expected = sum(1 for f in fluxes if f is not None and f > 0)
    x, y = v.page.evaluate(
        "(d) => { const s = window.vlkbPortal.catalogue.getSources().find((s) => s.data.designation === d); "
        "const [x, y] = window.vlkbPortal.aladin.world2pix(s.ra, s.dec); "
        "const box = document.getElementById('aladin').getBoundingClientRect(); return [x + box.left, y + box.top]; }",
        designation)
    v.page.mouse.click(x, y)
    v.page.wait_for_function("(d) => window.vlkbSed && window.vlkbSed.designation === d", arg=designation,
                             timeout=30_000)
    assert v.page.evaluate("() => window.vlkbSed.points") == expected > 1
    assert designation in v.page.text_content("#source-details")
    v.page.screenshot(path=str(artefacts / "sed.png"))
    assert v.errors == [] and v.outside == []


def test_filament_branches_are_drawn_for_the_view(visit, database) -> None:
    v = visit()
    _sky_ready(v.page)
    v.page.check("#show-filaments")
    v.page.wait_for_function("() => window.vlkbPortal.branchCount > 0", timeout=60_000)
    assert v.page.evaluate("() => window.vlkbPortal.branchCount") > 0
    assert v.errors == [] and v.outside == []
