"""DALI 1.1 examples of the TAP service: the worked ADQL queries and their XHTML+RDFa document.

The examples are data (:data:`EXAMPLES`); :func:`examples_document` renders them with
:mod:`vo.xmlns`. Every query runs on the demo data and returns rows
(``tests/conformance/test_examples.py`` checks it through ``/tap/sync``). No HTTP here.

RDFa markup, as DALI 1.1 section 2.3 and TAP 1.1 section 2.3.1 define it and taplint's EXA
stage reads it: one element carries ``vocab="http://www.ivoa.net/rdf/examples#"``; inside it,
each example is an element with ``id``, ``resource="#<id>"`` and ``typeof="example"``, holding
a ``property="name"`` title, a ``property="query"`` ADQL text and ``property="table"`` names.
Property elements hold plain text only, and no other element uses ``property``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from textwrap import dedent
from urllib.parse import urlencode

from lxml import etree

from vo.xmlns import E, tostring

__all__ = ["EXAMPLES", "EXAMPLES_VOCAB", "Example", "examples_document"]

XHTML_NS = "http://www.w3.org/1999/xhtml"
XML_NS = "http://www.w3.org/XML/1998/namespace"
# DALI 1.1 section 2.3: the RDFa vocabulary of the examples document.
EXAMPLES_VOCAB = "http://www.ivoa.net/rdf/examples#"

_CSS = """
body { font-family: sans-serif; max-width: 60em; margin: 1em auto; padding: 0 1em; line-height: 1.4; }
pre { background: #f4f4f4; border-left: 3px solid #88a; padding: 0.6em; overflow-x: auto; }
.example { border-top: 1px solid #ccc; margin-top: 1.5em; }
.tables code { background: #eef; padding: 0 0.2em; }
"""


@dataclass(frozen=True)
class Example:
    """One worked query: its fragment id, title, description, ADQL text and the tables it reads."""

    id: str
    title: str
    description: str
    query: str
    tables: tuple[str, ...]


def _adql(text: str) -> str:
    return dedent(text).strip()


EXAMPLES: tuple[Example, ...] = (
    Example(
        "cone-band70",
        "Cone search in the Hi-GAL 70 µm catalogue",
        "Compact sources within 3 arcmin of (l, b) = (0.5, 0.0), around the Sgr B2 complex. "
        "Positions are Galactic, so the circle is given in the GALACTIC frame directly; the "
        "70 µm fluxes trace the warm dust heated by young protostars.",
        _adql("""
            SELECT designation, glon, glat, flux, err_flux, snr
            FROM compactsources.band70um
            WHERE CONTAINS(POINT('GALACTIC', glon, glat),
                           CIRCLE('GALACTIC', 0.5, 0.0, 0.05)) = 1
        """),
        ("compactsources.band70um",),
    ),
    Example(
        "box-across-l0",
        "A box across the Galactic Centre (l = 0)",
        "A longitude-latitude box from l = 359.5 to l = 0.5 in the 250 µm catalogue. glon runs "
        "from 0 to 360, so a box straddling l = 0 needs two longitude ranges joined with OR.",
        _adql("""
            SELECT designation, glon, glat, flux, snr
            FROM compactsources.band250um
            WHERE (glon > 359.5 OR glon < 0.5)
              AND glat BETWEEN -0.05 AND 0.05
            ORDER BY glat
        """),
        ("compactsources.band250um",),
    ),
    Example(
        "brightest-500um",
        "The brightest sources at 500 µm",
        "The twenty Hi-GAL 500 µm sources with the largest integrated flux density: the "
        "massive, cold clumps that dominate the submillimetre emission of the region.",
        _adql("""
            SELECT TOP 20 designation, glon, glat, flux, err_flux, fwhma, fwhmb
            FROM compactsources.band500um
            ORDER BY flux DESC
        """),
        ("compactsources.band500um",),
    ),
    Example(
        "sources-in-cube-footprint",
        "MIPSGAL sources inside the CHaMP 13CO cubes",
        "MIPSGAL 24 µm sources brighter than 1 Jy that fall inside the footprint (s_region, "
        "ICRS) of a CHaMP 13CO (1-0) cube, with the cube that covers them: candidates for "
        "which a line spectrum can be cut out with SODA.",
        _adql("""
            SELECT s.designation, s.glon, s.glat, s.flux, o.obs_publisher_did
            FROM compactsources.band24um AS s
            JOIN ivoa.obscore AS o
              ON CONTAINS(POINT('ICRS', s.ra, s.dec), o.s_region) = 1
            WHERE o.obs_collection = 'CHaMP'
              AND o.obs_title = '13CO | 1-0'
              AND s.flux > 1
        """),
        ("compactsources.band24um", "ivoa.obscore"),
    ),
    Example(
        "seds-on-filament",
        "Band-merged SEDs of the sources on a filament",
        "Far-infrared spectral energy distributions (70 to 500 µm) and distances of the "
        "band-merged sources lying inside the outline of filament 2; contour_poly is the "
        "filament contour as a polygon in Galactic coordinates. DISTANCE is an ADQL function, "
        "so the distance column is written as a delimited identifier; -9999 means unknown.",
        _adql("""
            SELECT sed.designationft, sed.glonft, sed.glatft,
                   sed.flux70, sed.flux160, sed.flux250, sed.flux350, sed.flux500,
                   sed."distance"
            FROM compactsources.sed_view_final AS sed
            JOIN filaments.filaments AS f
              ON CONTAINS(POINT('GALACTIC', sed.glonft, sed.glatft), f.contour_poly) = 1
            WHERE f.idfil_mos = 2
        """),
        ("compactsources.sed_view_final", "filaments.filaments"),
    ),
    Example(
        "sources-per-filament",
        "Filaments ranked by their number of compact sources",
        "How many band-merged sources each filament hosts, with the filament length and mean "
        "column density: a first look at star-formation activity along filaments.",
        _adql("""
            SELECT f.idfil_mos, f.glon, f.glat, f.length, f.mean_col_dens,
                   COUNT(*) AS n_sources
            FROM filaments.filaments AS f
            JOIN compactsources.sed_view_final AS sed
              ON CONTAINS(POINT('GALACTIC', sed.glonft, sed.glatft), f.contour_poly) = 1
            GROUP BY f.idfil_mos, f.glon, f.glat, f.length, f.mean_col_dens
            ORDER BY n_sources DESC
        """),
        ("filaments.filaments", "compactsources.sed_view_final"),
    ),
    Example(
        "datasets-covering-source",
        "Images and cubes covering a source",
        "Every image and spectral cube whose footprint contains the 70 µm source "
        "HIGALPB000.4768+0.0380, ordered by wavelength; access_url points to its DataLink "
        "document (download, cutouts).",
        _adql("""
            SELECT o.obs_collection, o.obs_title, o.dataproduct_type, o.em_min,
                   o.obs_publisher_did, o.access_url
            FROM compactsources.band70um AS s
            JOIN ivoa.obscore AS o
              ON CONTAINS(POINT('ICRS', s.ra, s.dec), o.s_region) = 1
            WHERE s.designation = 'HIGALPB000.4768+0.0380'
            ORDER BY em_min
        """),
        ("compactsources.band70um", "ivoa.obscore"),
    ),
    Example(
        "cubes-velocity-range",
        "Line cubes covering a position and a velocity range",
        "CHaMP spectral cubes that contain (l, b) = (0.3, 0.0) and cover LSRK velocities from "
        "-10 to +20 km/s (vel_min and vel_max are in km/s for every cube).",
        _adql("""
            SELECT obs_publisher_did, obs_title, vel_min, vel_max,
                   s_ra, s_dec, s_fov, access_url
            FROM ivoa.obscore
            WHERE dataproduct_type = 'cube'
              AND obs_collection = 'CHaMP'
              AND vel_min <= -10 AND vel_max >= 20
              AND CONTAINS(POINT('GALACTIC', 0.3, 0.0), s_region_galactic) = 1
        """),
        ("ivoa.obscore",),
    ),
    Example(
        "survey-list",
        "The surveys of the knowledge base",
        "One row per survey, species and transition, with rest frequency, velocity unit and "
        "number of datasets; name, species and transition match obs_collection and obs_title "
        "in ivoa.obscore.",
        _adql("""
            SELECT name, species, transition, description, dataproduct_type,
                   rest_frequency, velocity_unit, dataset_count
            FROM datasets.surveys
            ORDER BY name, transition
        """),
        ("datasets.surveys",),
    ),
    Example(
        "sources-per-band",
        "Source counts and fluxes per Hi-GAL band (WITH)",
        "An ADQL 2.1 common table expression stacks the five Hi-GAL band catalogues; GROUP BY "
        "then gives the number of sources and the mean and maximum flux in each band.",
        _adql("""
            WITH bands AS (
              SELECT 70 AS wavelength_um, flux FROM compactsources.band70um
              UNION ALL SELECT 160 AS wavelength_um, flux FROM compactsources.band160um
              UNION ALL SELECT 250 AS wavelength_um, flux FROM compactsources.band250um
              UNION ALL SELECT 350 AS wavelength_um, flux FROM compactsources.band350um
              UNION ALL SELECT 500 AS wavelength_um, flux FROM compactsources.band500um
            )
            SELECT wavelength_um, COUNT(*) AS n_sources,
                   AVG(flux) AS mean_flux, MAX(flux) AS max_flux
            FROM bands
            GROUP BY wavelength_um
            ORDER BY wavelength_um
        """),
        (
            "compactsources.band70um", "compactsources.band160um", "compactsources.band250um",
            "compactsources.band350um", "compactsources.band500um",
        ),
    ),
    Example(
        "clumps-by-evolutionary-class",
        "Clump properties by evolutionary class",
        "Number of Hi-GAL clumps with a distance and their mean mass, bolometric luminosity, "
        "dust temperature and luminosity-to-mass ratio, for prestellar and protostellar "
        "clumps: protostellar clumps are warmer and have a higher L/M.",
        _adql("""
            SELECT evol_class, COUNT(*) AS n_clumps,
                   AVG(mass) AS mean_mass, AVG(l_bol) AS mean_l_bol,
                   AVG(t_dust) AS mean_t_dust, AVG(l_over_m) AS mean_l_over_m
            FROM compactsources.props_dist
            GROUP BY evol_class
            ORDER BY evol_class
        """),
        ("compactsources.props_dist",),
    ),
    Example(
        "sed-models-by-mass",
        "SED models of warm clumps of 500 to 2000 solar masses",
        "Models of the SED grid with a clump mass between 500 and 2000 solar masses and a dust "
        "temperature above 20 K, most luminous first, with their Herschel model fluxes.",
        _adql("""
            SELECT TOP 20 id, clump_mass, dust_temp, bolometric_luminosity, clump_upper_age,
                   m_star_tot, pacs1, pacs3, spir1, spir3
            FROM compactsources.sed_models
            WHERE clump_mass BETWEEN 500 AND 2000
              AND dust_temp > 20
            ORDER BY bolometric_luminosity DESC
        """),
        ("compactsources.sed_models",),
    ),
    Example(
        "vialactea-band-box",
        "A band catalogue as the ViaLactea client asks for it",
        "The query the ViaLactea visual-analytics client sends to load a band layer: every "
        "column of a band table in an inclusive glon/glat box. The client spells the schema "
        "vlkb_compactsources, which is accepted as an alias (it is listed in TAP_SCHEMA on the "
        "client's own TAP base only, so the example uses the published name).",
        _adql("""
            SELECT * FROM compactsources.band70um
            WHERE (glon>=0.2 AND glon<=0.4) AND (glat>=-0.1 AND glat<=0.1)
        """),
        ("compactsources.band70um",),
    ),
    Example(
        "filament-spines",
        "Filaments with their spine branches",
        "Filaments whose centroid lies in a small box, joined to their branches that belong to "
        "the main spine (flagspine S), with each branch's one-dimensional line in the "
        "legacy contour string form.",
        _adql("""
            SELECT f.idfil_mos, f.glon, f.glat, f.length,
                   b.idbranch, b.length AS branch_length, b.contour1d
            FROM filaments.filaments AS f
            JOIN filaments.branches AS b ON f.idfil_mos = b.idfil_mos
            WHERE f.glon BETWEEN 0.2 AND 0.6
              AND f.glat BETWEEN -0.3 AND 0.3
              AND b.flagspine = 'S'
        """),
        ("filaments.filaments", "filaments.branches"),
    ),
    Example(
        "crossmatch-70-24",
        "Cross-match of 70 µm and 24 µm sources",
        "70 µm sources with a MIPSGAL 24 µm counterpart within 6 arcsec, in a 0.2 by 0.2 "
        "degree field; the separation is computed with DISTANCE and converted to arcsec.",
        _adql("""
            SELECT a.designation AS designation70, b.designation AS designation24,
                   a.flux AS flux70, b.flux AS flux24,
                   DISTANCE(POINT('ICRS', a.ra, a.dec), POINT('ICRS', b.ra, b.dec)) * 3600
                     AS sep_arcsec
            FROM compactsources.band70um AS a
            JOIN compactsources.band24um AS b
              ON CONTAINS(POINT('ICRS', b.ra, b.dec), CIRCLE('ICRS', a.ra, a.dec, 6.0 / 3600)) = 1
            WHERE a.glon BETWEEN 0.3 AND 0.5 AND a.glat BETWEEN -0.1 AND 0.1
        """),
        ("compactsources.band70um", "compactsources.band24um"),
    ),
    Example(
        "columns-of-table",
        "The columns of a table, from TAP_SCHEMA",
        "Names, types, units, UCDs and descriptions of the columns of the band-merged "
        "catalogue, in their published order: what to look at before writing a query.",
        _adql("""
            SELECT column_name, datatype, unit, ucd, description
            FROM TAP_SCHEMA.columns
            WHERE table_name = 'compactsources.sed_view_final'
            ORDER BY column_index
        """),
        ("TAP_SCHEMA.columns",),
    ),
    Example(
        "wavelengths-in-microns",
        "Wavelength coverage per survey band in microns (IN_UNIT)",
        "em_min and em_max are stored in metres, as ObsCore requires; the ADQL 2.1 function "
        "IN_UNIT converts them to microns. One row per survey band with its number of datasets.",
        _adql("""
            SELECT obs_collection, obs_title, COUNT(*) AS n_datasets,
                   IN_UNIT(MIN(em_min), 'um') AS lambda_min_um,
                   IN_UNIT(MAX(em_max), 'um') AS lambda_max_um
            FROM ivoa.obscore
            GROUP BY obs_collection, obs_title
            ORDER BY lambda_min_um
        """),
        ("ivoa.obscore",),
    ),
    Example(
        "brightest-160um-page-2",
        "Second page of the brightest 160 µm sources (OFFSET)",
        "Sources 26 to 50 in decreasing 160 µm flux: ADQL 2.1 OFFSET skips the first page, so "
        "a long ranked list can be read page by page.",
        _adql("""
            SELECT TOP 25 designation, glon, glat, flux, snr
            FROM compactsources.band160um
            ORDER BY flux DESC
            OFFSET 25
        """),
        ("compactsources.band160um",),
    ),
)


def _h(tag: str, *children: etree._Element | str | None, **attrib: str | None) -> etree._Element:
    """An XHTML element; ``class_`` stands for ``class``."""
    attrs = {("class" if k == "class_" else k): v for k, v in attrib.items()}
    return E(f"{{{XHTML_NS}}}{tag}", *children, attrib=attrs)


def _run_link(example: Example) -> str:
    # Relative to /tap/examples, so it resolves to the sync endpoint of this very service.
    return "sync?" + urlencode({"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": example.query})


def _example_element(example: Example) -> etree._Element:
    tables: list[etree._Element | str | None] = ["Tables: "]
    for i, name in enumerate(example.tables):
        tables += [", " if i else None, _h("code", name, property="table")]
    return _h(
        "div",
        _h("h2", example.title, property="name"),
        _h("p", example.description),
        _h("pre", example.query, property="query"),
        _h("p", *tables, class_="tables"),
        _h("p", _h("a", "Run this query", href=_run_link(example)), " (VOTable from the sync endpoint)"),
        id=example.id,
        resource=f"#{example.id}",
        typeof="example",
        class_="example",
    )


def examples_document(service_title: str, examples: Sequence[Example] = EXAMPLES) -> bytes:
    """The DALI examples document (XHTML+RDFa 1.1) listing ``examples``."""
    head = _h(
        "head",
        _h("title", f"{service_title}: TAP examples"),
        _h("style", _CSS),
    )
    body = _h(
        "body",
        _h("h1", f"{service_title}: TAP examples"),
        _h(
            "p",
            "Worked ADQL queries over the Galactic-plane compact-source catalogues, filaments, "
            "SED models and the ObsCore table of images and cubes. Send them with LANG=ADQL to the ",
            _h("a", "synchronous endpoint", href="sync"),
            " of this TAP service; TOPCAT lists them under Examples. "
            "Coordinates are in degrees, Galactic longitudes run from 0 to 360.",
        ),
        _h("ul", *[_h("li", _h("a", ex.title, href=f"#{ex.id}")) for ex in examples]),
        # DALI 1.1 section 2.3: the single vocab attribute of the document.
        _h("div", *[_example_element(ex) for ex in examples], vocab=EXAMPLES_VOCAB),
    )
    root = E(
        f"{{{XHTML_NS}}}html",
        head,
        body,
        attrib={f"{{{XML_NS}}}lang": "en", "lang": "en", "version": "XHTML+RDFa 1.1"},
        nsmap={None: XHTML_NS},  # None is the default namespace for lxml
    )
    return tostring(root)
