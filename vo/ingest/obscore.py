"""One ObsCore row (``ivoa.obscore``) from one FITS header: footprint, resolution, spectral range.

Everything comes from the header and the survey description; pixel data are never read.
The footprint is the four outer corners of the pixel grid (``astropy.wcs.WCS.calc_footprint``
with ``center=False``) converted to ICRS (``s_region``) and Galactic (``s_region_galactic``),
written in pgSphere's polygon input form ``{(lon1d,lat1d),...}`` in degrees, counter-clockwise
in (lon, lat) as seen with longitude growing to the right (DALI 1.1 section 3.3.7 example
order; pgSphere itself accepts either order and takes the smaller region). Corners that
straddle l = 0 need no special case: each vertex is a point on the sphere.

The spectral coverage ``em_min``/``em_max`` (metres) comes from, in order: a spectral WCS axis,
one channel included (VRAD/VOPT/VELO/ZOPT need the rest frequency: radio convention
``f = f0 (1 - v/c)``); the keywords ``WAVEMIN``/``WAVEMAX`` (m); ``BANDLO``/``BANDHI`` (m, the
SIAP/DaCHS bandpass); ``FREQ``/``RESTFRQ``/``RESTFREQ``/``OBSFREQ`` (Hz) with ``BANDWID`` (Hz);
``WAVELENG``, ``WAVELEN``, ``BANDREF`` (m) or ``WAVELNTH`` (um when the value is above 1e-2). A
unit written in the comment (``[um]``, ``[GHz]``) is honoured through astropy.units. The
module has no I/O and no SQL.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS, WCSSUB_CELESTIAL, FITSFixedWarning, Wcsprm
from astropy.wcs.utils import proj_plane_pixel_scales, wcs_to_celestial_frame

from schemas import find_table
from vo import storage
from vo.cutout.bounds import C as _C
from vo.cutout.bounds import NoRestFrequency, rest_frequency, to_frequency
from vo.datalink import DATALINK_MEDIA, links_ref, preview_ref

__all__ = [
    "BAND_KEYWORDS",
    "DATALINK_FORMAT",
    "IngestError",
    "SurveyInfo",
    "band_label",
    "band_source",
    "build_wcs",
    "obscore_row",
    "publisher_did",
    "survey_info",
    "survey_slug",
]

#: access_format of rows whose access_url is a DataLink links document (DataLink 1.1 section 3.3).
DATALINK_FORMAT = DATALINK_MEDIA
_STOKES = {1: "I", 2: "Q", 3: "U", 4: "V", -1: "RR", -2: "LL", -3: "RL", -4: "LR", -5: "XX", -6: "YY",
           -7: "XY", -8: "YX"}


class IngestError(Exception):
    """A file that cannot be described; the message says why, for the ingest report."""


def survey_slug(name: str, species: str, transition: str) -> str:
    """Directory and DID key of a (sub-)survey: ``hi-gal-70um``, ``champ-13co-1-0``."""
    parts = [name] if species == "Continuum" else [name, species]
    text = "-".join([*parts, transition.replace(" ", "")])
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


@dataclass(frozen=True)
class SurveyInfo:
    """What the ingest needs to know of a survey (see ``demo.surveys.Survey``)."""

    name: str
    #: None until known: ingest takes Continuum for 2D maps and refuses a cube without one
    species: str | None
    #: None (or empty) until known: ingest refuses files without one, suggesting one from the header
    transition: str | None
    description: str | None = None
    rest_frequency: float | None = None
    velocity_unit: str | None = None
    dataproduct_type: str | None = None
    facility: str | None = None
    instrument: str | None = None
    reference: str | None = None
    #: Groups that may read the survey; empty: public; None: keep the policy the survey has
    #: (public for a new survey), so re-ingesting files never opens a restricted survey.
    groups: tuple[str, ...] | None = None

    @property
    def complete(self) -> bool:
        """Whether species and transition are both known (they make the DIDs and ``obs_title``)."""
        return bool(self.species) and bool(self.transition)

    @property
    def slug(self) -> str:
        if not self.complete:
            raise ValueError("species and transition must be known first")
        return survey_slug(self.name, self.species or "", self.transition or "")

    @property
    def obs_title(self) -> str:
        return f"{self.species} | {self.transition}"

    @property
    def policy(self) -> str:
        return "PRIVATE" if self.groups else "PUBLIC"


def survey_info(survey: Any) -> SurveyInfo:
    """A :class:`SurveyInfo` from a survey dataclass (any object with those attributes) or a mapping."""
    if isinstance(survey, SurveyInfo):
        return survey
    get = survey.get if isinstance(survey, Mapping) else (lambda k, d=None: getattr(survey, k, d))
    fields: dict[str, Any] = {k: get(k) for k in SurveyInfo.__dataclass_fields__ if get(k) is not None}
    fields.setdefault("species", None)
    fields.setdefault("transition", None)
    if fields.get("groups") is not None:
        fields["groups"] = tuple(fields["groups"])
    return SurveyInfo(**fields)


def publisher_did(authority: str, slug: str, filename: str) -> str:
    """``ivo://{authority}/vlkb?{slug}/{filename}``: the dataset's ID in SODA and DataLink."""
    return f"ivo://{authority}/vlkb?{slug}/{filename}"


# -- geometry ------------------------------------------------------------------------------------
def _ccw(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Vertex order (indices) that is counter-clockwise in the local (lon cos lat, lat) plane."""
    lon0 = np.deg2rad(lon[0])
    dl = (np.deg2rad(lon) - lon0 + np.pi) % (2 * np.pi) - np.pi
    x = dl * np.cos(np.deg2rad(lat))
    y = np.deg2rad(lat)
    area = np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y)
    idx = np.arange(len(lon))
    return idx if area > 0 else idx[::-1]


def _spoly(lon: np.ndarray, lat: np.ndarray) -> str:
    lon = np.mod(lon, 360.0)
    return "{" + ",".join(f"({a:.9f}d,{b:.9f}d)" for a, b in zip(lon.tolist(), lat.tolist(), strict=True)) + "}"


def _sep_deg(lon1, lat1, lon2, lat2) -> np.ndarray:
    l1, b1, l2, b2 = map(np.deg2rad, (lon1, lat1, lon2, lat2))
    h = np.sin((b2 - b1) / 2) ** 2 + np.cos(b1) * np.cos(b2) * np.sin((l2 - l1) / 2) ** 2
    return np.rad2deg(2 * np.arcsin(np.sqrt(np.clip(h, 0, 1))))


#: Keywords of distortions wcslib alone does not apply (SIP, lookup tables): such headers take
#: astropy's full ``WCS(header)`` path.
_DISTORTION = ("A_ORDER", "B_ORDER", "CPDIS1", "CPDIS2", "CQDIS1", "CQDIS2", "D2IMDIS1", "D2IMDIS2", "D2IMFILE")


def _with(prm: Wcsprm) -> WCS:
    wcs = WCS(naxis=prm.naxis)
    wcs.wcs = prm
    wcs.wcs.set()
    return wcs


def build_wcs(header: fits.Header, raw: bytes | None = None) -> WCS:
    """The header's WCS, fixed as ``WCS(header)`` fixes it, built once.

    With the raw header bytes, wcslib parses them directly (``Wcsprm``): ``WCS(header)``
    formats and re-parses the header four times, which made it the largest cost of ingest
    (about 0.9 ms against 0.1 ms per file). Headers with SIP or lookup-table distortions
    take astropy's full path, which applies them.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            if raw is None or any(key in header for key in _DISTORTION):
                return WCS(header)
            prm = Wcsprm(raw, relax=True, warnings=False)
            prm.fix()
            return _with(prm)
        except Exception as exc:  # astropy and wcslib raise many kinds for bad WCS keywords
            raise IngestError(f"invalid WCS: {exc}") from exc


def _celestial(header: fits.Header, raw: bytes | None = None) -> tuple[WCS, WCS, int, int]:
    wcs = build_wcs(header, raw)
    if not wcs.has_celestial:
        raise IngestError("no celestial WCS: CTYPE1/CTYPE2 must name sky axes (e.g. GLON-CAR, GLAT-CAR)")
    # the sky axes alone, from wcslib's sub-image (WCS.celestial would deep-copy the whole object)
    cel = wcs if wcs.naxis == 2 else _with(wcs.wcs.sub([WCSSUB_CELESTIAL]))
    lon_axis, lat_axis = wcs.wcs.lng, wcs.wcs.lat
    nx, ny = header.get(f"NAXIS{lon_axis + 1}"), header.get(f"NAXIS{lat_axis + 1}")
    if not nx or not ny:
        raise IngestError("the celestial axes have no pixels (NAXISn missing or 0)")
    return wcs, cel, int(nx), int(ny)


@cache
def _galactic_to_icrs() -> np.ndarray:
    """The rotation matrix from Galactic to ICRS unit vectors, computed once with astropy.

    ICRS and Galactic differ by a fixed rotation, so a 3x3 matrix product gives what
    ``SkyCoord(...).icrs`` gives, without the frame machinery that costs milliseconds per
    call: ingest speed is per file (the datasets issue asks for < 5 ms/file).
    """
    # the Galactic x, y, z axes are (l, b) = (0, 0), (90, 0), (0, 90); their ICRS unit vectors
    # are the columns of the matrix
    axes = SkyCoord(l=[0.0, 90.0, 0.0] * u.deg, b=[0.0, 0.0, 90.0] * u.deg, frame="galactic").icrs
    ra, dec = axes.ra.rad, axes.dec.rad
    return np.array([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])


def _rotate(lon: np.ndarray, lat: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo, la = np.deg2rad(lon), np.deg2rad(lat)
    v = np.array([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])
    x, y, z = matrix @ v
    return np.rad2deg(np.arctan2(y, x)) % 360.0, np.rad2deg(np.arcsin(np.clip(z, -1.0, 1.0)))


def _both_frames(lon: np.ndarray, lat: np.ndarray, frame: Any) -> tuple[np.ndarray, ...]:
    """(ra, dec, l, b) of points given in the WCS's celestial ``frame``."""
    name = getattr(frame, "name", "")
    if name == "galactic":
        ra, dec = _rotate(lon, lat, _galactic_to_icrs())
        return ra, dec, np.mod(lon, 360.0), lat
    if name == "icrs":
        gl, gb = _rotate(lon, lat, _galactic_to_icrs().T)
        return np.mod(lon, 360.0), lat, gl, gb
    pts = SkyCoord(lon * u.deg, lat * u.deg, frame=frame)  # FK5/FK4 equinoxes etc.: astropy does it all
    icrs, gal = pts.icrs, pts.galactic
    return icrs.ra.deg, icrs.dec.deg, gal.l.deg, gal.b.deg


def _footprint(cel: WCS, nx: int, ny: int) -> dict[str, Any]:
    corners = cel.calc_footprint(axes=(nx, ny), center=False)
    centre = cel.pixel_to_world_values((nx - 1) / 2.0, (ny - 1) / 2.0)
    frame = wcs_to_celestial_frame(cel)
    ra, dec, gl, gb = _both_frames(np.append(corners[:, 0], centre[0]), np.append(corners[:, 1], centre[1]), frame)
    order_icrs = _ccw(ra[:4], dec[:4])
    order_gal = _ccw(gl[:4], gb[:4])
    scales = np.abs(proj_plane_pixel_scales(cel)) * 3600.0  # degrees per pixel, in arcsec
    return {
        "s_ra": float(ra[4]),
        "s_dec": float(dec[4]),
        "s_fov": float(2 * _sep_deg(ra[4], dec[4], ra[:4], dec[:4]).max()),
        "s_region": _spoly(ra[:4][order_icrs], dec[:4][order_icrs]),
        "s_region_galactic": _spoly(gl[:4][order_gal], gb[:4][order_gal]),
        "s_pixel_scale": float(np.mean(scales)),
        "s_xel1": nx,
        "s_xel2": ny,
    }


# -- spectral ------------------------------------------------------------------------------------
def _to_frequency(ctype: str, values: np.ndarray, f0: float | None) -> np.ndarray:
    """Frequencies (Hz) of spectral world values in SI units of axis type ``ctype`` (energy too)."""
    kind = ctype[:4].rstrip("-")
    if kind == "ENER":
        return values / 6.62607015e-34
    try:
        freq = to_frequency(kind, values, f0)
    except NoRestFrequency:
        raise IngestError(f"spectral axis {ctype} needs a rest frequency (RESTFRQ or RESTWAV)") from None
    if freq is None:
        raise IngestError(f"unsupported spectral axis type {ctype}")
    return freq


_EM_UCD = {"FREQ": "em.freq", "WAVE": "em.wl", "AWAV": "em.wl", "VRAD": "spect.dopplerVeloc.radio",
           "VOPT": "spect.dopplerVeloc.opt", "ZOPT": "src.redshift", "VELO": "spect.dopplerVeloc"}


def _spectral_axis(header: fits.Header, wcs: WCS, survey: SurveyInfo) -> dict[str, Any] | None:
    """Coverage from a spectral WCS axis, or None when there is none."""
    spec = wcs.wcs.spec
    if spec < 0:
        return None
    n = int(header.get(f"NAXIS{spec + 1}", 1) or 1)
    ctype = wcs.wcs.ctype[spec]
    # other axes at their centre pixel, where every projection is defined
    pix = np.array([[(int(header.get(f"NAXIS{i + 1}", 1) or 1) - 1) / 2.0 for i in range(wcs.naxis)]] * 3)
    pix[:, spec] = [-0.5, n - 0.5, 0.0]
    world = wcs.wcs_pix2world(pix, 0)[:, spec]
    f0 = rest_frequency(header, wcs)  # the file's own (as a cut reads it), else the survey's
    f0 = survey.rest_frequency if f0 is None else f0
    freq = _to_frequency(ctype, world, f0)
    if np.any(freq <= 0) or not np.all(np.isfinite(freq)):
        raise IngestError(f"spectral axis {ctype} gives non-positive frequencies")
    wl = _C / freq[:2]
    out: dict[str, Any] = {
        "em_min": float(wl.min()),
        "em_max": float(wl.max()),
        "em_xel": n,
        "em_res_power": float(wl.mean() / ((wl.max() - wl.min()) / n)) if wl.max() > wl.min() else None,
        "em_ucd": _EM_UCD.get(ctype[:4].rstrip("-")),
        "em_unit": header.get(f"CUNIT{spec + 1}", str(wcs.wcs.cunit[spec])).strip() or None,
        "cube": n > 1,
    }
    if f0 is not None and n > 1:
        vel = _C * (1 - freq[:2] / f0) / 1000.0
        out["vel_min"], out["vel_max"] = float(vel.min()), float(vel.max())
    return out


#: 2D-map band keywords, in the order they are tried, with their default unit. A unit in the
#: comment's leading brackets (``WAVELEN = 70 / [um] ...``, FITS 4.0 section 4.3.2) wins over
#: the default. BANDLO/BANDHI/BANDREF are the SIAP and DaCHS bandpass keywords (metres).
_BAND_RANGES = (("WAVEMIN", "WAVEMAX"), ("BANDLO", "BANDHI"))
_BAND_FREQS = ("FREQ", "RESTFRQ", "RESTFREQ", "OBSFREQ")
_BAND_WAVES = ("WAVELENG", "WAVELEN", "BANDREF", "WAVELNTH")
_UNIT_IN_COMMENT = re.compile(r"^\s*\[([^\]]+)\]")
#: what :func:`_band_keywords` reads, for messages and docs
BAND_KEYWORDS = ("WAVEMIN/WAVEMAX, BANDLO/BANDHI, FREQ, RESTFRQ, RESTFREQ or OBSFREQ (+BANDWID), "
                 "WAVELENG, WAVELEN, BANDREF, WAVELNTH")


def _quantity(header: fits.Header, key: str, default: u.UnitBase) -> u.Quantity | None:
    """``key``'s positive value with its unit (from the comment's ``[unit]``, else ``default``), or None."""
    value = header.get(key)
    if value is None or isinstance(value, str | bool):
        return None
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        return None
    found = _UNIT_IN_COMMENT.match(header.comments[key] or "")
    unit = default
    if found:
        text = found.group(1).strip()
        try:
            unit = u.Unit(text, format="fits")
        except ValueError:
            try:
                unit = u.Unit(text)
            except ValueError:
                raise IngestError(f"{key}: unknown unit [{text}] in its comment") from None
    elif key == "WAVELNTH" and number > 1e-2:  # a common habit: micrometres without a unit
        unit = u.um
    return number * unit


def _metres(q: u.Quantity, key: str) -> float:
    try:
        return float(q.to(u.m, equivalencies=u.spectral()).value)
    except u.UnitConversionError:
        raise IngestError(f"{key}: unit {q.unit} is not a wavelength, frequency or energy") from None


def _band_keywords(header: fits.Header) -> dict[str, Any] | None:
    """Coverage of a 2D map from its band keywords (:data:`BAND_KEYWORDS`), or None."""
    wl: list[float] = []
    source = ""
    for keys in _BAND_RANGES:
        ends = [_quantity(header, k, u.m) for k in keys]
        if ends[0] is not None and ends[1] is not None:
            wl, source = [_metres(ends[0], keys[0]), _metres(ends[1], keys[1])], "/".join(keys)
            break
    if not wl:
        for key in _BAND_FREQS:
            freq = _quantity(header, key, u.Hz)
            if freq is None:
                continue
            hz = _C / _metres(freq, key)
            width = _quantity(header, "BANDWID", u.Hz)
            bw = float(width.to(u.Hz).value) if width is not None and width.unit.is_equivalent(u.Hz) else 0.0
            bw = min(bw, hz)  # a width beyond the centre frequency would give a negative edge
            wl = [_C / (hz + bw / 2), _C / (hz - bw / 2)]
            source = key
            break
    if not wl:
        for key in _BAND_WAVES:
            value = _quantity(header, key, u.m)
            if value is not None:
                wl, source = [_metres(value, key)] * 2, key
                break
    if not wl:
        return None
    lo_m, hi_m = min(wl), max(wl)
    return {
        "em_min": lo_m, "em_max": hi_m, "em_xel": 1,
        "em_res_power": float((lo_m + hi_m) / 2 / (hi_m - lo_m)) if hi_m > lo_m else None,
        "em_ucd": "em.wl", "em_unit": None, "cube": False, "source": source,
    }


def band_source(header: fits.Header) -> str | None:
    """The keyword(s) a 2D map's band is read from (e.g. ``BANDLO/BANDHI``), None when there is none."""
    found = _band_keywords(header)
    return found["source"] if found else None


def band_label(em_min: float, em_max: float) -> str:
    """A transition label for a band, as surveys name theirs: ``70 um``, ``1.1 mm``, ``912 MHz``."""
    wl = (em_min + em_max) / 2
    if wl < 1e-3:
        return f"{wl * 1e6:.4g} um"
    if wl < 1e-2:
        return f"{wl * 1e3:.4g} mm"
    freq = _C / wl
    return f"{freq / 1e9:.4g} GHz" if freq >= 1e9 else f"{freq / 1e6:.4g} MHz"


def _polarization(header: fits.Header, wcs: WCS) -> tuple[str | None, int | None]:
    for i, ctype in enumerate(wcs.wcs.ctype):
        if ctype.startswith("STOKES"):
            n = int(header.get(f"NAXIS{i + 1}", 1) or 1)
            pix = np.zeros((n, wcs.naxis))
            pix[:, i] = np.arange(n)
            codes = np.rint(wcs.wcs_pix2world(pix, 0)[:, i]).astype(int)
            states = [_STOKES[c] for c in codes if c in _STOKES]
            return ("/" + "/".join(states) + "/" if states else None), n
    return None, None


# -- time, units ---------------------------------------------------------------------------------
def _mjd(header: fits.Header, mjd_key: str, date_key: str) -> float | None:
    if header.get(mjd_key) is not None:
        return float(header[mjd_key])
    if header.get(date_key):
        try:
            return float(Time(header[date_key], format="isot", scale="utc").mjd)
        except ValueError:
            return None
    return None


def _o_ucd(bunit: str | None) -> str | None:
    if not bunit:
        return None
    unit = bunit.strip().lower().replace(" ", "")
    if unit in ("k", "kelvin"):
        return "phot.antennaTemp"
    if "/sr" in unit or "/beam" in unit or "/pix" in unit or "/arcsec" in unit:
        return "phot.flux.density.sb"
    if unit.endswith("jy"):
        return "phot.flux.density"
    return None


# -- the row -------------------------------------------------------------------------------------
def obscore_row(
    header: fits.Header,
    *,
    raw: bytes | None = None,
    path: Path | str,
    survey: Any,
    authority: str,
    file_size: int,
) -> dict[str, Any]:
    """The ``ivoa.obscore`` row of the FITS file at ``path`` whose image header is ``header``.

    ``survey`` is a survey dataclass or a mapping with at least name, species and transition;
    ``path`` a local path or an fsspec URL (its last segment names the dataset); ``raw``, the
    header's bytes when the caller has them, makes the WCS cheaper to build. Returns every
    column ``schemas/ivoa.yaml`` declares (generated ones excepted); raises :class:`IngestError`
    when the header cannot be described (no sky WCS, no spectral coverage). ``access_url`` and
    ``preview`` are stored relative to the service (``datalink/links?ID=...``): answers make
    them absolute with the public base URL of the moment, so a new host name needs no re-ingest.
    """
    info = survey_info(survey)
    name = storage.name_of(str(path))
    wcs, cel, nx, ny = _celestial(header, raw)
    row: dict[str, Any] = _footprint(cel, nx, ny)
    spectral = _spectral_axis(header, wcs, info) or _band_keywords(header)
    if spectral is None:
        raise IngestError(f"no spectral coverage: the header has no spectral axis and none of {BAND_KEYWORDS}")
    cube = spectral.pop("cube")
    spectral.pop("source", None)
    row.update(spectral)
    did = publisher_did(authority, info.slug, name)
    bmaj = header.get("BMAJ")
    t_min = _mjd(header, "MJD-OBS", "DATE-OBS")
    t_max = _mjd(header, "MJD-END", "DATE-END")
    exptime = header.get("EXPTIME")
    if t_max is None and t_min is not None and exptime:
        t_max = t_min + float(exptime) / 86400.0
    pol_states, pol_xel = _polarization(header, wcs)
    bunit = str(header["BUNIT"]).strip() if header.get("BUNIT") else None
    row.update(
        dataproduct_type="cube" if cube else "image",
        dataproduct_subtype=None,
        calib_level=2,
        obs_collection=info.name,
        obs_id=Path(name).stem,
        obs_title=info.obs_title,
        obs_publisher_did=did,
        obs_creator_did=None,
        publisher_id=f"ivo://{authority}/vlkb",
        bib_reference=info.reference,
        data_rights="secure" if info.groups else "public",
        access_url=links_ref(did),
        access_format=DATALINK_FORMAT,
        access_estsize=int(math.ceil(file_size / 1024)),
        target_name=(str(header["OBJECT"]).strip() or None) if header.get("OBJECT") else None,
        target_class=None,
        s_resolution=float(bmaj) * 3600.0 if bmaj else None,
        s_calib_status="calibrated",
        s_stat_error=None,
        t_min=t_min,
        t_max=t_max,
        t_exptime=float(exptime) if exptime else None,
        t_resolution=None,
        t_xel=None,
        em_calib_status="calibrated",
        o_ucd=_o_ucd(bunit),
        o_unit=bunit,
        o_calib_status="absolute",
        pol_states=pol_states,
        pol_xel=pol_xel,
        facility_name=info.facility or (str(header.get("TELESCOP")).strip() if header.get("TELESCOP") else None),
        instrument_name=info.instrument or (str(header.get("INSTRUME")).strip() if header.get("INSTRUME") else None),
        proposal_id=None,
        preview=preview_ref(did),
    )
    row.setdefault("vel_min", None)
    row.setdefault("vel_max", None)
    return _declared(row)


def _declared(row: dict[str, Any]) -> dict[str, Any]:
    """The row restricted to (and completed with) the declared, non-generated obscore columns."""
    try:
        table = find_table("ivoa.obscore")
    except KeyError:
        return row
    return {c.name: row.get(c.name) for c in table.columns if not c.generated}
