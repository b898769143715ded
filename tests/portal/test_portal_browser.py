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
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import psycopg
import pytest
from lxml import etree
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
    error = v.page.text_content("#adql-error")
    where = re.search(r"line (\d+), column (\d+)", error)
    assert where is not None and where.group(1) == "1", error
    column = int(where.group(2))
    # the offending line with a caret under the named column, and the query selected from there
    assert error.endswith("SELECT FROM compactsources.band500um\n" + " " * (column - 1) + "^"), error
    assert v.page.evaluate("() => document.getElementById('adql-query').selectionStart") == column - 1
    # a scatter plot of two numeric columns of the answer: every row with both values, as the database has them
    v.page.fill("#adql-query", "SELECT TOP 60 designation, glon, glat FROM compactsources.band500um ORDER BY flux DESC")
    v.page.click("#adql-run")
    v.page.wait_for_function("() => document.getElementById('adql-status').dataset.rows === '60'", timeout=60_000)
    with psycopg.connect(database.url) as c:
        pairs = sorted(c.execute("SELECT glon, glat FROM compactsources.band500um ORDER BY flux DESC LIMIT 60")
                       .fetchall())
    assert v.page.evaluate("() => window.vlkbAdql.plotted") == {"x": "glon", "y": "glat", "points": len(pairs)}
    drawn = v.page.evaluate("() => window.vlkbAdql.plot.data")
    np.testing.assert_allclose(drawn[0], [p[0] for p in pairs])
    np.testing.assert_allclose(sorted(drawn[1]), sorted(p[1] for p in pairs))
    v.page.screenshot(path=str(artefacts / "adql-scatter.png"), full_page=True)
    # the only console error is the browser's note of the refused query (its 400)
    assert v.outside == [] and all("400" in e for e in v.errors), v.errors


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


def test_a_clicked_cube_pixel_shows_its_spectrum(visit, database, artefacts) -> None:
    from astropy import units as u
    from astropy.io import fits
    from astropy.wcs import WCS

    v = visit("cube")
    v.page.wait_for_function("() => window.vlkbCube && window.vlkbCube.drawn > 0", timeout=60_000)
    box = v.page.locator("#cube-canvas").bounding_box()
    v.page.mouse.click(box["x"] + 0.43 * box["width"], box["y"] + 0.61 * box["height"])
    v.page.wait_for_function("() => window.vlkbCube.spectra > 0", timeout=60_000)
    shown = v.page.evaluate("() => ({...window.vlkbCube.spectrum, plotted: window.vlkbCube.spectrumPlot.data[1]})")
    with psycopg.connect(database.url) as c:
        rel = c.execute("SELECT path FROM vlkb.datasets WHERE publisher_did = %s", (shown["did"],)).fetchone()[0]
    path = Path(rel) if Path(rel).is_absolute() else database.home / "data" / rel
    with fits.open(path) as hdul:
        cube = hdul[0].data
        wcs = WCS(hdul[0].header)
    nx, ny = cube.shape[2], cube.shape[1]
    # the pixel under the click (FITS rows start at the bottom of the canvas)
    assert (shown["x"], shown["y"]) == (int(0.43 * nx) + 1, ny - int(0.61 * ny))
    truth = cube[:, shown["y"] - 1, shown["x"] - 1].astype(float)
    np.testing.assert_allclose(shown["plotted"], truth, rtol=1e-6, atol=1e-6 * np.nanmax(np.abs(truth)))
    velocity = wcs.spectral.pixel_to_world(np.arange(cube.shape[0])).to_value(u.km / u.s)
    np.testing.assert_allclose(shown["velocities"], velocity, rtol=1e-9, atol=1e-9)
    v.page.screenshot(path=str(artefacts / "cube-spectrum.png"))
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
SED_WAVES = (2.16, 3.4, 4.6, 12, 22, 24, 70, 160, 250, 350, 500, 870, 1100)
#: sed_models' band columns and wavelengths (um)
MODEL_BANDS = {"wise1": 3.4, "i1": 3.6, "i2": 4.5, "wise2": 4.6, "i3": 5.8, "i4": 8.0, "wise3": 12.0, "wise4": 22.0,
               "m1": 24.0, "pacs1": 70.0, "pacs2": 100.0, "pacs3": 160.0, "spir1": 250.0, "spir2": 350.0,
               "spir3": 500.0, "laboc": 870.0, "bol11": 1100.0}


def _best_model(row: tuple, models: np.ndarray) -> np.ndarray:
    """The model fluxes (Jy) of the best fit the portal asks for, computed here with numpy from the contract
    (docs/vialactea.md): the source's distance fixed, every point at a model band, errors as given (10 % of the
    flux where missing), equal group weights shared within each group (mid-IR < 25 um <= far-IR <= 250 um <
    sub-mm), weight / error**2, chi-square summed over the points."""
    waves = list(MODEL_BANDS.values())
    cols, obs, err = [], [], []
    for i, wl in enumerate(SED_WAVES):
        f, e = row[2 * i], row[2 * i + 1]
        j = int(np.argmin([abs(m - wl) for m in waves]))
        if f is None or f <= 0 or abs(waves[j] - wl) > 0.01 * waves[j]:
            continue
        cols.append(j)
        obs.append(f)
        err.append(e if e is not None and e > 0 else 0.1 * f)
    obs, err = np.array(obs), np.array(err)
    group = np.array([0 if waves[j] < 25 else 1 if waves[j] <= 250 else 2 for j in cols])
    share = 1.0 / np.bincount(group, minlength=3)[group]
    weight = share / share.max() / err**2
    at_d = models * 1e-3 / row[-1] ** 2  # mJy at 1 kpc -> Jy at the distance (kpc)
    chi2 = ((at_d[:, cols] - obs) ** 2) @ weight
    return at_d[int(np.argmin(chi2))]


def test_clicking_a_source_shows_its_row_and_sed(visit, database, artefacts) -> None:
    v = visit()
    _sky_ready(v.page)
    shown = v.page.evaluate("() => window.vlkbPortal.catalogue.getSources().map((s) => s.data.designation)")
    with psycopg.connect(database.url) as c:
        # the brightest 70 um source on the map that has a band-merged SED
        designation = c.execute(
            "SELECT b.designation FROM compactsources.band70um b JOIN compactsources.sed_view_final s "
            "ON s.designation70 = b.designation WHERE b.designation = ANY(%s) AND s.distance > 0 "
            "ORDER BY b.flux DESC LIMIT 1",
            (shown,)).fetchone()[0]
        row = c.execute(f"SELECT {', '.join(f'flux{b}, err_flux{b}' for b in SED_BANDS)}, distance "
                        "FROM compactsources.sed_view_final WHERE designation70 = %s", (designation,)).fetchone()
        models = np.array(c.execute(f"SELECT {', '.join(MODEL_BANDS)} FROM compactsources.sed_models "
                                    "ORDER BY id").fetchall(), dtype=float)
    fluxes = row[0:-1:2]
    expected = sum(1 for f in fluxes if f is not None and f > 0)
    model = _best_model(row, models)
    x, y = v.page.evaluate(
        "(d) => { const s = window.vlkbPortal.catalogue.getSources().find((s) => s.data.designation === d); "
        "const [x, y] = window.vlkbPortal.aladin.world2pix(s.ra, s.dec); "
        "const box = document.getElementById('aladin').getBoundingClientRect(); return [x + box.left, y + box.top]; }",
        designation)
    v.page.mouse.click(x, y)
    v.page.wait_for_function("(d) => window.vlkbSed && window.vlkbSed.designation === d && window.vlkbSed.done",
                             arg=designation,
                             timeout=30_000)
    assert v.page.evaluate("() => window.vlkbSed.points") == expected > 1
    assert designation in v.page.text_content("#source-details")
    # the SED fit's best model overplotted: its positive model fluxes, in Jy at the source's distance
    assert v.page.evaluate("() => document.getElementById('sed-plot').dataset.fitError") is None
    drawn = v.page.evaluate("() => window.vlkbSed.plot.data[3].filter((v) => v !== null)")
    positive = model[model > 0]
    assert v.page.evaluate("() => window.vlkbSed.fitPoints") == len(drawn) == len(positive) > 5
    np.testing.assert_allclose(drawn, positive, rtol=1e-9)
    v.page.screenshot(path=str(artefacts / "sed.png"))
    assert v.errors == [] and v.outside == []


def test_filament_branches_are_drawn_for_the_view(visit, database) -> None:
    v = visit()
    _sky_ready(v.page)
    v.page.check("#show-filaments")
    v.page.wait_for_function("() => window.vlkbPortal.branchCount > 0", timeout=60_000)
    assert v.page.evaluate("() => window.vlkbPortal.branchCount") > 0
    assert v.errors == [] and v.outside == []


def _aladin_point(page, ra: float, dec: float) -> tuple[float, float]:
    """Page coordinates of an ICRS position on the sky view."""
    return tuple(page.evaluate(
        "([ra, dec]) => { const [x, y] = window.vlkbPortal.aladin.world2pix(ra, dec); "
        "const box = document.getElementById('aladin').getBoundingClientRect(); return [x + box.left, y + box.top]; }",
        [ra, dec]))


def test_a_drawn_circle_lists_its_datasets_and_yields_a_cutout_containing_it(visit, database, artefacts) -> None:
    from astropy import units as u
    from astropy.coordinates import SkyCoord
    from astropy.io import fits
    from astropy.wcs import WCS
    from astropy.wcs.utils import skycoord_to_pixel

    v = visit()
    _sky_ready(v.page)
    v.page.select_option("#catalogue-select", "")  # no marker under the clicks
    box = v.page.locator("#aladin").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    v.page.click("#region-draw")
    v.page.mouse.click(cx, cy)
    v.page.mouse.click(cx + 12, cy + 5)
    v.page.wait_for_function("() => window.vlkbRegion.circle && "
                             "document.getElementById('region-status').textContent.includes('cover')", timeout=60_000)
    ra, dec, r = (v.page.evaluate(f"() => window.vlkbRegion.circle.{k}") for k in ("ra", "dec", "r"))
    assert 0.005 < r < 0.2
    circle = "scircle(spoint(radians(%s), radians(%s)), radians(%s))"
    with psycopg.connect(database.url) as c:
        expected = {row[0] for row in c.execute(
            f"SELECT obs_publisher_did FROM ivoa.obscore WHERE s_region && {circle} "
            "AND obs_collection <> 'MeerKAT-private'", (ra, dec, r))}
        # an image that holds the whole circle: its cutout must contain it
        did = c.execute(f"SELECT obs_publisher_did FROM ivoa.obscore WHERE {circle} <@ s_region "
                        "AND dataproduct_type = 'image' AND obs_collection <> 'MeerKAT-private' "
                        "ORDER BY obs_publisher_did LIMIT 1", (ra, dec, r)).fetchone()[0]
    listed = set(v.page.eval_on_selector_all("#region-datasets li", "els => els.map(e => e.dataset.did)"))
    assert listed == expected and did in listed
    v.page.wait_for_timeout(500)  # previews
    v.page.screenshot(path=str(artefacts / "region.png"))

    with v.page.expect_download(timeout=60_000) as download:
        v.page.click(f"#region-datasets li[data-did='{did}'] a.cutout")
    path = download.value.path()
    with fits.open(path) as hdul:
        hdu = next(h for h in hdul if h.data is not None)
        wcs = WCS(hdu.header).celestial
        ny, nx = hdu.data.shape[-2:]
    centre = SkyCoord(ra * u.deg, dec * u.deg, frame="icrs")
    points = [centre] + [centre.directional_offset_by(pa * u.deg, 0.98 * r * u.deg) for pa in (0, 90, 180, 270)]
    for p in points:
        x, y = skycoord_to_pixel(p, wcs)
        assert -0.5 <= x <= nx - 0.5 and -0.5 <= y <= ny - 0.5, (p, x, y, nx, ny)
    # a cut, not the whole file: about the circle's size in pixels
    scale = abs(wcs.proj_plane_pixel_scales()[0].to_value(u.deg))
    assert max(nx, ny) <= 2 * r / scale + 4

    # one SODA job cutting every listed dataset, followed to the end
    v.page.click("#region-cut")
    v.page.wait_for_function("() => window.vlkbRegion.job && window.vlkbRegion.finished", timeout=120_000)
    assert v.page.evaluate("() => window.vlkbRegion.phase") == "COMPLETED", v.page.text_content("#region-job")
    results = v.page.eval_on_selector_all("#region-job a.job-result", "els => els.map(e => e.textContent)")
    assert "manifest" in results and sum(1 for n in results if n.startswith("cut-")) >= 1
    v.page.screenshot(path=str(artefacts / "region-job.png"))
    assert v.errors == [] and v.outside == []


def test_oidc_login_with_pkce_shows_the_restricted_survey_and_logout_hides_it(visit, database, artefacts) -> None:
    v = visit()
    assert PRIVATE not in _hips_options(v.page)
    v.page.click("#login-button")  # to the development issuer's login form, and back with a code
    v.page.wait_for_selector("#dev-user", timeout=30_000)
    v.page.fill("#dev-user", "portal-member")
    v.page.fill("#dev-groups", "survey-team")
    v.page.screenshot(path=str(artefacts / "dev-login.png"))
    v.page.click("#dev-login")
    v.page.wait_for_function("() => document.getElementById('who').textContent === 'portal-member'", timeout=30_000)
    assert "code=" not in v.page.url and v.page.url.endswith("#sky")
    assert PRIVATE in _hips_options(v.page)
    _sky_ready(v.page)
    ra, dec, r = _circle(v.page)
    circle = "scircle(spoint(radians(%s), radians(%s)), radians(%s))"
    with psycopg.connect(database.url) as c:
        everything, public = c.execute(
            f"SELECT count(*), count(*) FILTER (WHERE obs_collection <> 'MeerKAT-private') FROM ivoa.obscore "
            f"WHERE s_region && {circle}", (ra, dec, r)).fetchone()
    assert everything > public
    assert v.page.evaluate("() => window.vlkbPortal.footprints") == everything
    assert "MeerKAT" in v.page.text_content("#footprint-legend")
    v.page.screenshot(path=str(artefacts / "logged-in.png"))

    v.page.click("#logout-button")
    v.page.wait_for_function("() => document.getElementById('who').textContent === 'anonymous'", timeout=30_000)
    assert PRIVATE not in _hips_options(v.page)
    _sky_ready(v.page)
    assert v.page.evaluate("() => window.vlkbPortal.footprints") == public
    assert "MeerKAT" not in v.page.text_content("#footprint-legend")
    assert v.errors == [] and v.outside == []


def _job(server, path: str, data: dict, headers: dict, files: dict | None = None, run: bool = True) -> str:
    """A job created (and run to its end) over HTTP with the user's token: its URL."""
    resp = httpx.post(server.url + path, data=data, files=files, headers=headers, timeout=60, follow_redirects=False)
    assert resp.status_code == 303, resp.text[:400]
    url = resp.headers["location"]
    url = server.url + url if url.startswith("/") else url
    if run:
        httpx.post(url + "/phase", data={"PHASE": "RUN"}, headers=headers, timeout=30)
        for _ in range(30):
            if httpx.get(url + "/phase", params={"WAIT": "10"}, headers=headers,
                         timeout=30).text.strip() in ("COMPLETED", "ERROR", "ABORTED"):
                break
    return url


def test_my_jobs_lists_the_users_jobs_of_every_kind_with_phase_progress_and_results(visit, server, artefacts) -> None:
    """Jobs of three kinds made over HTTP with one user's token: the My jobs tab lists exactly them, each with
    the phase and the results its own job document gives, and a stamps job's progress 'N of N' for its N sources."""
    token = mint(Settings(home=server.env["VLKB_HOME"]), "portal-jobs-user", ())
    auth = {"Authorization": f"Bearer {token}"}
    positions = [(0.4391, 0.0593), (0.5, -0.1), (359.8, 0.2)]
    sources = "name,glon,glat\n" + "".join(f"s{i},{lon},{lat}\n" for i, (lon, lat) in enumerate(positions))
    made = {
        _job(server, "/tap/async", {"LANG": "ADQL", "QUERY": "SELECT TOP 3 * FROM TAP_SCHEMA.tables"},
             auth): "TAP query",
        _job(server, "/stamps/async", {"SURVEY": "Hi-GAL/70 um", "SIZE": "0.01"}, auth,
             files={"SOURCES": ("s.csv", sources.encode(), "text/csv")}): "stamps",
        _job(server, "/soda/async", {"ID": "nothing-here"}, auth, run=False): "cutout",
    }
    v = visit("jobs", token=token)
    v.page.wait_for_function("() => /^\\d+ jobs$/.test(document.getElementById('jobs-status').textContent)",
                             timeout=60_000)
    rows = v.page.evaluate("""() => [...document.querySelectorAll('#jobs-table tbody tr')].map((tr) => ({
        id: tr.dataset.job, cells: [...tr.cells].map((c) => c.textContent.trim()),
        results: [...tr.cells[5].querySelectorAll('a')].map((a) => a.textContent)}))""")
    v.page.screenshot(path=str(artefacts / "my-jobs.png"), full_page=True)
    assert {r["id"] for r in rows} == {url.rsplit("/", 1)[1] for url in made}
    for url, kind in made.items():
        row = next(r for r in rows if r["id"] == url.rsplit("/", 1)[1])
        doc = etree.fromstring(httpx.get(url, headers=auth, timeout=30).content)
        uws = {"uws": "http://www.ivoa.net/xml/UWS/v1.0"}
        assert row["cells"][0] == kind
        assert row["cells"][2] == doc.findtext("uws:phase", namespaces=uws)
        assert row["results"] == [r.get("id") for r in doc.iterfind("uws:results/uws:result", uws)]
    stamps = next(r for r in rows if r["cells"][0] == "stamps")
    assert stamps["cells"][2] == "COMPLETED" and stamps["cells"][3] == f"{len(positions)} of {len(positions)}"
    assert next(r for r in rows if r["cells"][0] == "cutout")["cells"][2] == "PENDING"
    assert not v.errors and not v.outside


def test_band_merged_sources_filament_outlines_and_bubbles_for_the_view(visit, database, artefacts) -> None:
    """The overlays of the view against the database: band-merged sources (Galactic positions only), filament
    outlines and bubbles whose centres fall in the view's circle (its centre taken to Galactic by astropy)."""
    from astropy.coordinates import SkyCoord

    v = visit()
    _sky_ready(v.page)
    v.page.select_option("#catalogue-select", "compactsources.sed_view_final")
    v.page.check("#show-outlines-filaments")
    v.page.check("#show-bubbles")
    _sky_ready(v.page)
    ra, dec, r = _circle(v.page)
    gal = SkyCoord(ra, dec, unit="deg", frame="icrs").galactic
    circle = "scircle(spoint(radians(%s), radians(%s)), radians(%s))"
    args = (gal.l.deg, gal.b.deg, r)
    with psycopg.connect(database.url) as c:
        merged = c.execute(f"SELECT count(*) FROM compactsources.sed_view_final WHERE pos_gal <@ {circle}",
                           args).fetchone()[0]
        filaments = c.execute("SELECT count(*) FROM filaments.filaments WHERE contour_poly IS NOT NULL "
                              f"AND spoint(radians(glon), radians(glat)) <@ {circle}", args).fetchone()[0]
        bubbles = c.execute("SELECT count(*) FROM filaments.bubbles WHERE contour_poly IS NOT NULL "
                            f"AND pos_gal <@ {circle}", args).fetchone()[0]
    state = v.page.evaluate("() => ({src: window.vlkbPortal.sources, fil: window.vlkbPortal.filamentsCount, "
                            "bub: window.vlkbPortal.bubblesCount})")
    assert merged > 0 and state["src"] == min(merged, 3000)
    assert filaments > 0 and state["fil"] == min(filaments, 2000)
    assert bubbles > 0 and state["bub"] == min(bubbles, 2000)
    v.page.screenshot(path=str(artefacts / "merged-filaments-bubbles.png"))
    assert v.errors == [] and v.outside == []
