"""The cutout engine and the SODA parameters, on FITS files written to tmp_path."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits

from vo.cutout import CutRequest, NoOverlapError, plan
from vo.cutout.bounds import header_wcs
from vo.errors import MultiValuedParamNotSupported, UsageError
from vo.shapes import Circle, Interval, Polygon, Range
from vo.soda import SodaParams, cutout, parse_pixels

REST = 110_201_354_300.0


def _image(path: Path, *, nx=200, ny=100, crval1=0.0, cdelt=0.01) -> Path:
    """A GLON-CAR map centred on (crval1, 0); with crval1=0 its grid crosses l = 0."""
    h = fits.Header()
    h.update(CTYPE1="GLON-CAR", CTYPE2="GLAT-CAR", CUNIT1="deg", CUNIT2="deg", CDELT1=-cdelt, CDELT2=cdelt,
             CRPIX1=(nx + 1) / 2, CRPIX2=(ny + 1) / 2, CRVAL1=crval1, CRVAL2=0.0, BUNIT="MJy/sr")
    data = np.arange(nx * ny, dtype=">f4").reshape(ny, nx)
    fits.PrimaryHDU(data, h).writeto(path)
    return path


def _cube(path: Path, *, nx=40, ny=30, nv=64, cunit3=True) -> Path:
    h = fits.Header()
    h.update(CTYPE1="GLON-CAR", CTYPE2="GLAT-CAR", CUNIT1="deg", CUNIT2="deg", CDELT1=-0.01, CDELT2=0.01,
             CRPIX1=20.5, CRPIX2=15.5, CRVAL1=10.0, CRVAL2=0.0, CTYPE3="VRAD", CRVAL3=-40000.0, CDELT3=1250.0,
             CRPIX3=1.0, SPECSYS="LSRK", RESTFRQ=REST, BUNIT="K")
    if cunit3:
        h["CUNIT3"] = "m/s"
    data = np.arange(nx * ny * nv, dtype=">f4").reshape(nv, ny, nx)
    fits.PrimaryHDU(data, h).writeto(path)
    return path


def _cut(path: Path, req: CutRequest) -> fits.PrimaryHDU:
    c = plan(path, req, {"VLKBSRC": ("ivo://x/vlkb?a/b.fits", "src")})
    body = b"".join(c.chunks())
    assert len(body) == c.size and len(body) % 2880 == 0
    return fits.open(io.BytesIO(body))[0]


def _same_pixels(path: Path, hdu: fits.PrimaryHDU) -> None:
    """The cut's pixels are the original's at the cut's WCS offset (CRPIX shifted)."""
    src = fits.getheader(path)
    off = [int(round(src[f"CRPIX{i}"] - hdu.header[f"CRPIX{i}"])) for i in range(1, src["NAXIS"] + 1)]
    sl = tuple(slice(o, o + n) for o, n in zip(reversed(off), hdu.data.shape, strict=True))
    np.testing.assert_array_equal(hdu.data, fits.getdata(path)[sl])


@pytest.mark.parametrize("frame", ["galactic", "icrs"])
def test_circle_centre_maps_to_the_right_pixel(tmp_path, frame) -> None:
    path = _image(tmp_path / "m.fits", crval1=30.0)
    gal = SkyCoord(30.2, 0.1, unit="deg", frame="galactic")
    c = gal.transform_to(frame).spherical
    hdu = _cut(path, CutRequest(region=Circle(lon=c.lon.deg, lat=c.lat.deg, radius=0.1), frame=frame))
    x, y = header_wcs(hdu.header).world_to_pixel_values(30.2, 0.1)
    ny, nx = hdu.data.shape
    assert abs(x - (nx - 1) / 2) <= 0.5 + 1e-6 and abs(y - (ny - 1) / 2) <= 0.5 + 1e-6
    assert 20 <= nx <= 22 and 20 <= ny <= 22  # a diameter of 0.2 deg at 0.01 deg/pixel
    _same_pixels(path, hdu)
    assert hdu.header["VLKBSRC"] == "ivo://x/vlkb?a/b.fits"


@pytest.mark.parametrize("region", [
    Range(lon1=-0.2, lon2=0.2, lat1=-0.1, lat2=0.1),
    Range(lon1=359.8, lon2=360.2, lat1=-0.1, lat2=0.1),
    Circle(lon=359.95, lat=0.0, radius=0.1),
    Polygon(vertices=((359.8, -0.1), (0.2, -0.1), (0.2, 0.1), (359.8, 0.1))),
])
def test_region_across_l0(tmp_path, region) -> None:
    path = _image(tmp_path / "m.fits", crval1=0.0)
    hdu = _cut(path, CutRequest(region=region, frame="galactic"))
    wcs = header_wcs(hdu.header)
    ny, nx = hdu.data.shape
    lon0 = 359.95 if isinstance(region, Circle) else 0.0
    x, y = wcs.world_to_pixel_values(lon0, 0.0)
    assert abs(x - (nx - 1) / 2) <= 0.5 + 1e-6 and abs(y - (ny - 1) / 2) <= 0.5 + 1e-6
    # the box covers the region: both sides of l = 0
    left, _ = wcs.pixel_to_world_values(0, 0)
    right, _ = wcs.pixel_to_world_values(nx - 1, 0)
    assert 0 < left < 1 and 359 < right < 360
    assert 20 <= nx <= 42
    _same_pixels(path, hdu)


def test_velocity_cut_gives_exactly_the_channels_in_range(tmp_path) -> None:
    path = _cube(tmp_path / "c.fits")
    hdu = _cut(path, CutRequest(velo=Interval(lo=-10.0, hi=10.0)))
    v = header_wcs(hdu.header).sub([3]).wcs_pix2world(np.arange(hdu.data.shape[0]), 0)[0] / 1000
    np.testing.assert_allclose(v, np.arange(-10.0, 10.01, 1.25))
    _same_pixels(path, hdu)
    # BAND in metres selects the same channels: lambda = c / (f0 (1 - v/c))
    c = 299_792_458.0
    wl = sorted(c / (REST * (1 - np.array([-10.0, 10.0]) * 1000 / c)))
    band = _cut(path, CutRequest(band=Interval(lo=wl[0], hi=wl[1])))
    np.testing.assert_array_equal(band.data, hdu.data)


def test_cube_header_keeps_wcs_and_gets_cunit3_restfrq(tmp_path) -> None:
    path = _cube(tmp_path / "c.fits", cunit3=False)
    hdu = _cut(path, CutRequest(region=Circle(lon=10.05, lat=0.02, radius=0.05), frame="galactic",
                                velo=Interval(lo=0, hi=5)))
    h = hdu.header
    assert h["CUNIT3"] == "m/s" and h["RESTFRQ"] == REST and h["SPECSYS"] == "LSRK" and h["BUNIT"] == "K"
    assert h["NAXIS3"] == 5 and "HISTORY" in h
    _same_pixels(path, hdu)


def test_pixels_and_no_overlap(tmp_path) -> None:
    path = _cube(tmp_path / "c.fits")
    hdu = _cut(path, CutRequest(pixels=parse_pixels("[10:19] [5:*] [*]")))
    assert hdu.data.shape == (64, 26, 10)
    _same_pixels(path, hdu)
    for req in (CutRequest(region=Circle(lon=50, lat=0, radius=0.1), frame="galactic"),
                CutRequest(region=Circle(lon=190, lat=0, radius=0.1), frame="galactic"),
                CutRequest(velo=Interval(lo=500, hi=600)),
                CutRequest(pixels=((100, 200),))):
        with pytest.raises(NoOverlapError, match="no overlap"):
            plan(path, req)


def test_soda_params() -> None:
    q = SodaParams.from_params({"ID": ["ivo://a/vlkb?s/f.fits"], "POS": ["RANGE 359 361 -1 1"],
                                "POSSYS": ["galactic"], "VELO": ["-5 5"], "POL": ["I Q"]})
    assert q.possys == "GALACTIC" and isinstance(q.region, Range) and q.pol == ("I", "Q")
    assert "RANGE 359.0 361.0 -1.0 1.0 GALACTIC" in q.region_text()
    with pytest.raises(MultiValuedParamNotSupported):
        SodaParams.from_params({"ID": ["a", "b"]})
    with pytest.raises(MultiValuedParamNotSupported):
        SodaParams.from_params({"ID": ["a"], "POS": ["CIRCLE 1 1 1", "CIRCLE 2 2 1"]})
    for bad in ({}, {"ID": ["a"], "CIRCLE": ["1 2 0"]}, {"ID": ["a"], "POLYGON": ["1 1 2 2"]},
                {"ID": ["a"], "BAND": ["2 1"]}, {"ID": ["a"], "POS": ["CIRCLE 1 91 1"]},
                {"ID": ["a"], "POSSYS": ["FK5"]}, {"ID": ["a"], "PIXELS": ["10:20"]},
                {"ID": ["a"], "PIXELS": ["[20:10]"]}, {"ID": ["a"], "POL": ["W"]}):
        with pytest.raises(UsageError):
            SodaParams.from_params(bad)


def test_provenance_keywords(tmp_path) -> None:
    path = _image(tmp_path / "m.fits", crval1=30.0)
    q = SodaParams.from_params({"ID": ["ivo://a/vlkb?s/m.fits"], "CIRCLE": ["30 0 0.05"], "POSSYS": ["GALACTIC"]})
    h = cutout(path, "ivo://a/vlkb?s/m.fits", q).header
    assert h["VLKBSRC"] == "ivo://a/vlkb?s/m.fits" and h["VLKBREG"] == "CIRCLE 30.0 0.0 0.05 GALACTIC"
    assert h["VLKBVER"]


def test_only_the_slab_is_read(tmp_path) -> None:
    """A 2 GB (sparse) cube cut in a subprocess whose peak RSS stays far below the file size."""
    path = tmp_path / "big.fits"
    nv, ny, nx = 512, 1024, 1024
    h = fits.Header()
    h.update(SIMPLE=True, BITPIX=-32, NAXIS=3, NAXIS1=nx, NAXIS2=ny, NAXIS3=nv, CTYPE1="GLON-CAR",
             CTYPE2="GLAT-CAR", CUNIT1="deg", CUNIT2="deg", CDELT1=-0.001, CDELT2=0.001, CRPIX1=512.5,
             CRPIX2=512.5, CRVAL1=10.0, CRVAL2=0.0, CTYPE3="VRAD", CUNIT3="m/s", CRVAL3=0.0, CDELT3=100.0,
             CRPIX3=1.0, RESTFRQ=REST)
    head = h.tostring(padding=True).encode()
    size = nv * ny * nx * 4
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(len(head) + -(-size // 2880) * 2880)
    code = textwrap.dedent(f"""
        import resource
        from pathlib import Path
        from vo.cutout import CutRequest, plan
        from vo.shapes import Circle, Interval
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        c = plan(Path({str(path)!r}), CutRequest(region=Circle(lon=10, lat=0, radius=0.05), frame="galactic",
                 velo=Interval(lo=0, hi=10)))
        n = sum(len(b) for b in c.chunks())
        assert n == c.size, (n, c.size)
        print(c.box, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    box, grown_mb = out.stdout.rsplit(None, 1)
    assert "(0, 101)" in box
    assert int(grown_mb) < 200, out.stdout  # the file is 2 GB


def test_scaled_integers_keep_their_raw_values_and_scaling(tmp_path) -> None:
    path = tmp_path / "i.fits"
    h = fits.Header()
    h.update(CTYPE1="GLON-CAR", CTYPE2="GLAT-CAR", CDELT1=-0.01, CDELT2=0.01, CRPIX1=10.5, CRPIX2=10.5,
             CRVAL1=20.0, CRVAL2=0.0)
    hdu = fits.PrimaryHDU(np.arange(400, dtype=np.float32).reshape(20, 20) * 0.5 + 3, h)
    hdu.scale("int16", bscale=0.5, bzero=3)
    hdu.writeto(path)
    out = _cut(path, CutRequest(pixels=((2, 5), (3, 4))))
    assert out.header["BITPIX"] == 16 and out.header["BZERO"] == 3 and out.header["BSCALE"] == 0.5
    np.testing.assert_array_equal(out.data, fits.getdata(path)[2:4, 1:5])


def test_pol_selects_planes_of_a_stokes_axis(tmp_path) -> None:
    path = tmp_path / "p.fits"
    h = fits.Header()
    h.update(CTYPE1="GLON-CAR", CTYPE2="GLAT-CAR", CDELT1=-0.01, CDELT2=0.01, CRPIX1=5.5, CRPIX2=5.5,
             CRVAL1=20.0, CRVAL2=0.0, CTYPE3="STOKES", CRVAL3=1.0, CDELT3=1.0, CRPIX3=1.0)
    fits.PrimaryHDU(np.arange(400, dtype=">f4").reshape(4, 10, 10), h).writeto(path)
    out = _cut(path, CutRequest(pol=("Q", "U")))
    assert out.data.shape == (2, 10, 10) and out.header["CRPIX3"] == 0.0
    np.testing.assert_array_equal(out.data, fits.getdata(path)[1:3])
    with pytest.raises(NoOverlapError):
        plan(path, CutRequest(pol=("RR",)))


@pytest.mark.parametrize("length", [1, 18, 40, 45, 60, 66, 67, 68, 69, 70, 71, 120])
def test_provenance_cards_fit_without_truncation_warnings(length) -> None:
    import warnings

    from astropy.io import fits

    from vo.cutout.fitsout import fitting_comment

    value = ("ivo://vlkb.example/vlkb?survey/" + "x" * 200)[:length]
    header = fits.Header()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # astropy warns when it has to cut a comment itself
        header["VLKBSRC"] = (value, fitting_comment(value, "source dataset (publisher DID)"))
        text = header.tostring()
    assert fits.Header.fromstring(text)["VLKBSRC"] == value
