"""The demo surveys: what each one is (published metadata) and how the demo draws its files.

:class:`Survey` is the metadata a survey row in ``datasets.surveys`` and the ingest need; it is
also what a real deployment describes for its own surveys. :class:`Layout` says how the demo
generator lays out and draws the files of one demo survey (projection, pixel scale, tiles,
beam, units, noise, spectral coverage). Plain data only: no I/O here.

The survey and transition strings are the ones the ViaLactea client compares with: Hi-GAL
"70 um" ... "500 um" and MIPSGAL "24 um" with species "Continuum" (``vialactea-client.md``
section 1.B).
"""

from __future__ import annotations

from dataclasses import dataclass

from vo.ingest.obscore import SurveyInfo

__all__ = ["DEMO_SURVEYS", "Layout", "Survey", "find_survey"]


@dataclass(frozen=True, kw_only=True)
class Survey(SurveyInfo):
    """One survey or sub-survey (name, species, transition), as published in ``datasets.surveys``:
    the ingest's :class:`~vo.ingest.obscore.SurveyInfo` with every field known.

    ``groups`` empty means public; otherwise only members of one of the groups may read it.
    ``rest_frequency`` is in Hz (line surveys only), ``velocity_unit`` the CUNIT of the cubes'
    velocity axis (``m/s`` or ``km/s``), ``dataproduct_type`` ``image`` or ``cube``.
    """

    species: str
    transition: str
    description: str
    dataproduct_type: str
    facility: str
    instrument: str
    reference: str
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Layout:
    """How the demo generator draws the files of one survey.

    Angles are in arcsec unless said otherwise; ``tiles`` are (l, b) centres in degrees.
    For 2D images the spectral coverage is ``wavelength`` (m) with the band edges ``band`` (m),
    or ``frequency`` (Hz) with the full band width ``bandwidth`` (Hz); for cubes the velocity axis is ``nchan``
    channels of ``dv_kms`` starting at ``v0_kms`` (LSRK, radio convention).
    """

    projection: str
    pixel: float
    shape: tuple[int, ...]
    tiles: tuple[tuple[float, float], ...]
    beam: float
    bunit: str
    noise: float
    catalogue: str | None = None
    wavelength: float | None = None
    band: tuple[float, float] | None = None
    frequency: float | None = None
    bandwidth: float | None = None
    v0_kms: float = 0.0
    dv_kms: float = 0.0
    date_obs: str = "2010-09-14T00:00:00"
    exptime: float = 3600.0
    #: relative strength of the filaments' ridges in this band
    filament_weight: float = 0.0


def _grid2x2(width_deg: float, height_deg: float, overlap: float = 0.1) -> tuple[tuple[float, float], ...]:
    """Centres of a 2x2 mosaic around (l, b) = (0, 0) whose tiles overlap by ``overlap``."""
    dl = width_deg * (1 - overlap) / 2
    db = height_deg * (1 - overlap) / 2
    return tuple(((lc % 360.0), bc) for bc in (-db, db) for lc in (dl, -dl))


def _row3(width_deg: float, overlap: float = 0.1) -> tuple[tuple[float, float], ...]:
    """Centres of three tiles along l, the middle one centred on l = 0."""
    step = width_deg * (1 - overlap)
    return ((step, 0.0), (0.0, 0.0), (360.0 - step, 0.0))


def _image(projection: str, pixel: float, nx: int, ny: int, **kw) -> Layout:
    return Layout(
        projection=projection, pixel=pixel, shape=(nx, ny),
        tiles=_grid2x2(nx * pixel / 3600, ny * pixel / 3600), **kw,
    )


def _cube(pixel: float, n: int, nchan: int, **kw) -> Layout:
    return Layout(projection="CAR", pixel=pixel, shape=(n, n, nchan), tiles=_row3(n * pixel / 3600), **kw)


_HIGAL_REF = "2010PASP..122..314M"
_HIGAL_DESC = (
    "Herschel infrared Galactic Plane Survey, {band} (Herschel/{inst}), beam {beam}\""
)


def _higal(band: int, inst: str, pixel: float, beam: float, nx: int, ny: int, noise: float,
           lo: float, hi: float, filw: float) -> tuple[Survey, Layout]:
    survey = Survey(
        name="Hi-GAL", description=_HIGAL_DESC.format(band=f"{band} um", inst=inst, beam=beam),
        species="Continuum", transition=f"{band} um", rest_frequency=None, velocity_unit=None,
        dataproduct_type="image", facility="Herschel", instrument=inst, reference=_HIGAL_REF,
    )
    layout = _image(
        "CAR", pixel, nx, ny, beam=beam, bunit="MJy/sr", noise=noise, catalogue=f"band{band}um",
        wavelength=band * 1e-6, band=(lo * 1e-6, hi * 1e-6), date_obs="2010-09-14T03:12:00",
        exptime=14400.0, filament_weight=filw,
    )
    return survey, layout


#: Every demo survey with its layout. The velocity axes of CHaMP use both m/s and km/s on purpose.
DEMO_SURVEYS: tuple[tuple[Survey, Layout], ...] = (
    _higal(70, "PACS", 3.2, 5.8, 960, 720, 5.0, 60.0, 85.0, 0.15),
    _higal(160, "PACS", 4.5, 12.0, 768, 576, 6.0, 130.0, 210.0, 0.6),
    _higal(250, "SPIRE", 6.0, 18.0, 640, 480, 3.0, 210.0, 290.0, 1.0),
    _higal(350, "SPIRE", 8.0, 24.0, 512, 384, 1.6, 300.0, 400.0, 0.8),
    _higal(500, "SPIRE", 11.5, 35.0, 384, 288, 0.7, 420.0, 580.0, 0.5),
    (
        Survey(
            name="MIPSGAL", description="Spitzer MIPS Galactic plane survey, 24 um, beam 6\"",
            species="Continuum", transition="24 um", rest_frequency=None, velocity_unit=None,
            dataproduct_type="image", facility="Spitzer", instrument="MIPS", reference="2009PASP..121...76C",
        ),
        _image(
            "TAN", 2.4, 1024, 768, beam=6.0, bunit="MJy/sr", noise=0.6, catalogue="band24um",
            wavelength=23.68e-6, band=(20.8e-6, 26.1e-6), date_obs="2005-09-28T10:00:00", exptime=15.7,
        ),
    ),
    (
        Survey(
            name="ASKAP-EMU", description="ASKAP Evolutionary Map of the Universe, 912 MHz, beam 15\"",
            species="Continuum", transition="912 MHz", rest_frequency=None, velocity_unit=None,
            dataproduct_type="image", facility="ASKAP", instrument="PAF", reference="2021PASA...38...46N",
        ),
        _image(
            "SIN", 4.0, 768, 576, beam=15.0, bunit="Jy/beam", noise=5e-5,
            frequency=912e6, bandwidth=288e6, date_obs="2022-05-01T12:00:00", exptime=36000.0,
        ),
    ),
    (
        Survey(
            name="MeerKAT-private", description="MeerKAT L-band continuum (team data), 1284 MHz, beam 8\"",
            species="Continuum", transition="1284 MHz", rest_frequency=None, velocity_unit=None,
            dataproduct_type="image", facility="MeerKAT", instrument="L-band receiver",
            reference="2024arXiv240101234X", groups=("survey-team",),
        ),
        _image(
            "SIN", 3.0, 640, 480, beam=8.0, bunit="Jy/beam", noise=2e-5,
            frequency=1284e6, bandwidth=856e6, date_obs="2023-03-12T20:00:00", exptime=36000.0,
        ),
    ),
    (
        Survey(
            name="CHaMP", description="Census of High- and Medium-mass Protostars, Mopra 13CO 1-0, beam 40\"",
            species="13CO", transition="1-0", rest_frequency=110.2013543e9, velocity_unit="m/s",
            dataproduct_type="cube", facility="Mopra", instrument="MOPS", reference="2011ApJS..196...12B",
        ),
        _cube(20.0, 128, 64, beam=40.0, bunit="K", noise=0.15, v0_kms=-40.0, dv_kms=1.25,
              frequency=110.2013543e9, date_obs="2008-07-20T15:00:00", exptime=7200.0, filament_weight=1.0),
    ),
    (
        Survey(
            name="CHaMP", description="Census of High- and Medium-mass Protostars, Mopra C18O 1-0, beam 40\"",
            species="C18O", transition="1-0", rest_frequency=109.7821734e9, velocity_unit="km/s",
            dataproduct_type="cube", facility="Mopra", instrument="MOPS", reference="2011ApJS..196...12B",
        ),
        _cube(20.0, 128, 64, beam=40.0, bunit="K", noise=0.1, v0_kms=-40.0, dv_kms=1.25,
              frequency=109.7821734e9, date_obs="2008-07-20T15:00:00", exptime=7200.0, filament_weight=0.3),
    ),
)


def find_survey(slug: str) -> Survey:
    """The demo survey whose :attr:`Survey.slug` is ``slug``; KeyError if none."""
    for survey, _ in DEMO_SURVEYS:
        if survey.slug == slug:
            return survey
    raise KeyError(slug)
