"""HiPS: `vlkb hips build` over the demo, its tiles against the source FITS, and who may read them.

Pixel values are checked independently: the tile holding a sky position is found with
astropy-healpix (nested scheme, Galactic frame, as HiPS 1.0 section 4.1 defines the file names),
the position is located in the tile with astropy's HPX WCS and compared with the source images
read with astropy at the same position (bilinear, averaged where images overlap, as the mosaic is).
The restricted survey's HiPS is part of the access matrix (see tests/conformance/test_access.py).
"""

from __future__ import annotations

import io
import subprocess
import time

import httpx
import numpy as np
import psycopg
import pytest
from astropy import units as u
from astropy.coordinates import Galactic, SkyCoord
from astropy.io import fits
from astropy.wcs import WCS
from astropy_healpix import HEALPix
from PIL import Image
from scipy.ndimage import map_coordinates

from tests.app.test_cli_errors import run_vlkb
from tests.conformance.test_access import GROUP, headers
from tests.conftest import Database

PUBLIC, PRIVATE = "hi-gal-70um", "meerkat-private-1284mhz"


def _build(database: Database, *args: str) -> subprocess.CompletedProcess[str]:
    return run_vlkb("hips", "build", *args, VLKB_HOME=str(database.home), VLKB_DB_PORT=str(database.port))


@pytest.fixture(scope="module")
def built(database: Database) -> dict[str, str]:
    """The demo's Hi-GAL 70 um and restricted MeerKAT HiPS, built by the CLI into VLKB_HOME/hips."""
    out = {}
    for slug in (PUBLIC, PRIVATE):
        run = _build(database, slug)
        assert run.returncode == 0, run.stderr
        out[slug] = run.stdout
    return out


def _sources(database: Database, slug: str) -> list[tuple[np.ndarray, WCS]]:
    with psycopg.connect(database.url) as c:
        paths = [r[0] for r in c.execute("SELECT path FROM vlkb.datasets WHERE publisher_did LIKE %s",
                                         (f"%?{slug}/%",))]
    assert paths, slug
    images = []
    for p in paths:
        with fits.open(p) as h:
            images.append((np.squeeze(h[0].data).astype(float), WCS(h[0].header).celestial))
    return images


def _truth(images: list[tuple[np.ndarray, WCS]], pos: SkyCoord) -> float:
    """The source images' value at ``pos``: bilinear in each image covering it, averaged."""
    values = []
    for data, wcs in images:
        x, y = wcs.world_to_pixel(pos)
        if 1 <= x <= data.shape[1] - 2 and 1 <= y <= data.shape[0] - 2:
            values.append(float(map_coordinates(data, [[y], [x]], order=1)[0]))
    assert values, f"no source image covers {pos}"
    return float(np.mean(values))


def _tile(root, order: int, pos: SkyCoord) -> tuple[np.ndarray, float, float, int]:
    npix = int(HEALPix(nside=2**order, order="nested", frame=Galactic()).skycoord_to_healpix(pos))
    path = root / f"Norder{order}" / f"Dir{npix // 10000 * 10000}" / f"Npix{npix}.fits"
    assert path.is_file(), path
    with fits.open(path) as h:
        data = h[0].data.astype(float)
        x, y = WCS(h[0].header).world_to_pixel(pos)
    return data, float(x), float(y), npix


def _properties(root) -> dict[str, str]:
    lines = (root / "properties").read_text().splitlines()
    return {k.strip(): v.strip() for k, v in (line.split("=", 1) for line in lines if "=" in line)}


# on l = 0 (the wrap of Galactic longitude), both sides of it, and off the plane; (0, 0) itself is the
# centre of HEALPix base pixel 4, a corner shared by four tiles at every order, so it is approached along l = 0
POSITIONS = [(0.0, 0.05), (0.0, -0.12), (359.85, 0.12), (0.3, -0.2), (0.45, 0.3), (359.6, -0.35)]


@pytest.mark.parametrize(("glon", "glat"), POSITIONS)
def test_tile_pixels_match_the_source_images(built, database, glon, glat) -> None:
    root = database.home / "hips" / PUBLIC
    order = int(_properties(root)["hips_order"])
    pos = SkyCoord(glon * u.deg, glat * u.deg, frame="galactic")
    data, x, y, _ = _tile(root, order, pos)
    images = _sources(database, PUBLIC)
    truth = _truth(images, pos)
    value = float(map_coordinates(data, [[y], [x]], order=1)[0])
    noise = 5.0  # MJy/sr, the demo's Hi-GAL 70 um rms
    # resampling twice (mosaic, then HEALPix) with bilinear interpolation on a 3.2" grid smooths a 5.8" beam
    assert abs(value - truth) <= 0.1 * abs(truth) + 3 * noise, (value, truth)


def test_png_tiles_show_the_same_pixels_flipped(built, database) -> None:
    root = database.home / "hips" / PUBLIC
    pos = SkyCoord(0.0 * u.deg, 0.0 * u.deg, frame="galactic")
    data, _, _, npix = _tile(root, 7, pos)
    png = np.asarray(Image.open(root / "Norder7" / f"Dir{npix // 10000 * 10000}" / f"Npix{npix}.png"))
    assert png.shape == (512, 512, 4)
    # HiPS 1.0 4.2.2: PNG rows start at the top, FITS rows at the bottom; blank pixels are transparent
    assert np.array_equal(png[::-1, :, 3] == 0, ~np.isfinite(data))
    finite = np.isfinite(data)
    bright, faint = np.nanargmax(np.where(finite, data, -np.inf)), np.nanargmin(np.where(finite, data, np.inf))
    assert png[::-1, :, 0].flat[bright] > png[::-1, :, 0].flat[faint]


def test_allsky_moc_and_properties(built, database) -> None:
    root = database.home / "hips" / PUBLIC
    text = (root / "properties").read_text()
    for key in ("creator_did", "obs_title", "hips_version", "hips_frame", "hips_order", "hips_tile_width",
                "hips_tile_format", "dataproduct_type", "hips_pixel_cut"):
        assert key in text
    assert "galactic" in text and "png fits" in text
    allsky = Image.open(root / "Norder3" / "Allsky.png")
    assert allsky.size == (27 * 64, 29 * 64)  # 768 order-3 tiles of 64 pixels, 27 per row (HiPS 1.0 4.3.2)
    assert np.asarray(allsky)[:, :, 3].any()
    # the coverage is in the frame of the tiles (what Aladin draws by): MOC 2.0 ranges of order-29 nested cells
    with fits.open(root / "Moc.fits") as h:
        assert h[1].header["COORDSYS"] == "G"
        ranges = np.asarray(h[1].data.field(0), dtype=np.int64).reshape(-1, 2)
    cells29 = HEALPix(nside=2**29, order="nested", frame=Galactic())

    def covered(glon: float, glat: float) -> bool:
        ipix = int(cells29.skycoord_to_healpix(SkyCoord(glon * u.deg, glat * u.deg, frame="galactic")))
        return bool(np.any((ranges[:, 0] <= ipix) & (ipix < ranges[:, 1])))

    assert covered(0.0, 0.05) and covered(359.7, -0.3)
    assert not covered(30.0, 0.0)


def test_rebuild_keeps_a_current_hips_and_force_rebuilds(built, database) -> None:
    assert "built in" in built[PUBLIC]
    props = database.home / "hips" / PUBLIC / "properties"
    before = props.stat().st_mtime_ns
    again = _build(database, PUBLIC)
    assert again.returncode == 0 and "current, kept" in again.stdout
    assert props.stat().st_mtime_ns == before
    time.sleep(0.01)
    forced = _build(database, PUBLIC, "--force")
    assert forced.returncode == 0 and "built in" in forced.stdout
    assert props.stat().st_mtime_ns != before


def test_build_of_an_unknown_survey_is_one_clear_line(database) -> None:
    run = _build(database, "no-such-survey")
    assert run.returncode == 1 and "no 2D survey" in run.stderr and "Traceback" not in run.stderr


# -- serving and the access matrix -----------------------------------------------------------------

def _records(text: str) -> dict[str, dict[str, str]]:
    out = {}
    for block in text.strip().split("\n\n"):
        rec = {k.strip(): v.strip() for k, v in (line.split("=", 1) for line in block.splitlines() if "=" in line)}
        if rec:
            out[rec["hips_service_url"].rsplit("/", 1)[1]] = rec
    return out


@pytest.mark.parametrize("who", ["anonymous", "member", "outsider"])
def test_access_matrix_hips_list_and_tiles(built, auth_server, issuer, who) -> None:
    sees = who == "member"
    h = headers(issuer, who)
    listing = httpx.get(auth_server.url + "/hips/list", headers=h, timeout=30)
    assert listing.status_code == 200
    records = _records(listing.text)
    assert PUBLIC in records and (PRIVATE in records) is sees
    assert records[PUBLIC]["hips_frame"] == "galactic"
    for slug, visible in ((PUBLIC, True), (PRIVATE, sees)):
        props = httpx.get(f"{auth_server.url}/hips/{slug}/properties", headers=h, timeout=30)
        allsky = httpx.get(f"{auth_server.url}/hips/{slug}/Norder3/Allsky.png", headers=h, timeout=30)
        tile = httpx.get(f"{auth_server.url}/hips/{slug}/Norder3/Dir0/Npix{_npix(3)}.fits", headers=h, timeout=30)
        if visible:
            assert props.status_code == 200 and "hips_order" in props.text
            assert allsky.status_code == 200 and allsky.headers["content-type"] == "image/png"
            assert tile.status_code == 200
            fits.open(io.BytesIO(tile.content))
        else:
            # hidden is the same answer as missing
            missing = httpx.get(f"{auth_server.url}/hips/no-such-survey/properties", headers=h, timeout=30)
            for resp in (props, allsky, tile):
                assert resp.status_code == 404 == missing.status_code
                assert "QUERY_STATUS" in resp.text and GROUP not in resp.text


def _npix(order: int) -> int:
    pos = SkyCoord(0 * u.deg, 0 * u.deg, frame="galactic")
    return int(HEALPix(nside=2**order, order="nested", frame=Galactic()).skycoord_to_healpix(pos))


@pytest.mark.parametrize("path", ["../../etc/passwd", "Norder3/Dir0/Npix1.txt",
                                  "properties/x", "Norder99999/Allsky.png", "%2e%2e/secret"])
def test_file_names_outside_hips_are_404(built, server, path) -> None:
    resp = httpx.get(f"{server.url}/hips/{PUBLIC}/{path}", timeout=30)
    assert resp.status_code in (400, 404) and "QUERY_STATUS" in resp.text
