"""The ViaLactea theoretical SED fit (``/sedmods/searchd``): parsing, the fit, the answer layout.

Unit tests fit against the demo grid built in memory; chi-squares are checked against a
straightforward per-model computation written here. The HTTP tests send the query exactly as
the client builds it (``QString::number`` numbers, ``QUrl::toPercentEncoding`` of the whole
quoted argument) to a real ``vlkb serve`` and read the answer the way ``readSedFitOutput`` does.
"""

from __future__ import annotations

import json
import math
from urllib.parse import quote

import httpx
import numpy as np
import pytest
from lxml import etree

from demo.sedmodels import BAND_WAVELENGTHS, make_sed_models
from schemas import find_table
from vo.errors import UsageError
from vo.vialactea.sedfit import (
    COLUMNS,
    MODEL_BANDS,
    PHYSICAL_COLUMNS,
    SedFit,
    SedFitParams,
    SedGrid,
    answer_json,
    fit,
    parse_searchd,
)

BANDS = list(MODEL_BANDS)
#: Hi-GAL plus MIPSGAL and IRAC 8 um, longest first as the client sends them
HIGAL = ["spir3", "spir2", "spir1", "pacs3", "pacs1", "m1", "i4"]


@pytest.fixture(scope="module")
def columns() -> dict[str, np.ndarray]:
    return make_sed_models()


@pytest.fixture(scope="module")
def grid(columns) -> SedGrid:
    return SedGrid.from_columns(columns)


def qt_number(x: float) -> str:
    """``QString::number(double)``: printf %g with 6 significant digits."""
    return f"{x:.6g}"


def client_argument(waves, fluxes, errors, flags, dist, prefilter="0.8", weights=("1", "1", "1"),
                    pivots=None, delta="3") -> str:
    """The argument as ``on_TheoreticalRemoteFit_triggered`` formats it (before encoding)."""
    def lst(values) -> str:
        return "[" + ",".join(v if isinstance(v, str) else qt_number(v) for v in values) + "]"

    pivots = waves if pivots is None else pivots
    return (f"'{lst(waves)}_{lst(fluxes)}_{lst(errors)}_{lst(flags)}_{dist}_{prefilter}_"
            f"{lst(weights)}_0_{lst(pivots)}_{delta}'")


def client_query(*args, **kwargs) -> str:
    """``QUrl::toPercentEncoding``: everything but the unreserved characters is escaped."""
    return quote(client_argument(*args, **kwargs), safe="")


def observe(grid: SedGrid, row: int, bands: list[str], dist: float, rel_err: float = 0.1):
    """Fluxes (Jy) of model ``row`` at ``dist`` pc in ``bands``, with relative errors."""
    flux = [float(grid.fluxes[row, BANDS.index(b)]) * 1e-3 * (1000.0 / dist) ** 2 for b in bands]
    return [MODEL_BANDS[b] for b in bands], flux, [rel_err * f for f in flux]


def params_for(waves, fluxes, errors, dist, *, flags=None, prefilter=1.0, weights=(1.0, 1.0, 1.0),
               pivots=(), delta=3.0) -> SedFitParams:
    return SedFitParams(wavelengths=tuple(waves), fluxes=tuple(fluxes), errors=tuple(errors),
                        detections=tuple(flags or [True] * len(waves)), distance=dist, prefilter=prefilter,
                        weights=weights, prefilter_wavelengths=tuple(pivots), delta_chi2=delta)


def brute_chi2(grid: SedGrid, p: SedFitParams, dist: float) -> np.ndarray:
    """Every model's chi-square at ``dist``, term by term, with the documented weights."""
    group = [0 if w < 25 else 1 if w <= 250 else 2 for w in p.wavelengths]
    share = [p.weights[g] / group.count(g) for g in group]
    out = np.zeros(len(grid))
    for w, f, e, det, c in zip(p.wavelengths, p.fluxes, p.errors, p.detections, share, strict=True):
        model = grid.fluxes[:, BANDS.index(next(b for b, bw in MODEL_BANDS.items() if bw == w))]
        model = model * 1000.0 / dist**2  # the client's own scale (setModelFitValue): mJy at 1 kpc -> Jy at d
        r = (model - f) / e if det else np.maximum(model - f, 0) / e
        out += c / max(share) * r * r
    return out


# --- the grid and the band table ---------------------------------------------------------------

def test_bands_match_the_demo_and_the_schema(grid: SedGrid) -> None:
    assert MODEL_BANDS == BAND_WAVELENGTHS
    names = [c.name for c in find_table("compactsources.sed_models").columns]
    assert [n for n in names if n in MODEL_BANDS] == BANDS
    assert set(PHYSICAL_COLUMNS) <= set(names)
    assert len(grid) >= 20_000 and np.all(grid.fluxes > 0)


def test_models_with_missing_fluxes_are_left_out(columns) -> None:
    cols = {k: np.array(v, copy=True) for k, v in columns.items()}
    cols["pacs1"] = cols["pacs1"].astype(object)
    cols["pacs1"][5] = None
    cols["spir1"][7] = np.nan
    g = SedGrid.from_columns(cols)
    assert len(g) == len(cols["id"]) - 2 and 6 not in g.ids and 8 not in g.ids


# --- the fit ----------------------------------------------------------------------------------

@pytest.mark.parametrize("row", [0, 4321, 12_345, 19_999])
def test_a_model_of_the_grid_is_recovered(grid: SedGrid, row: int) -> None:
    waves, flux, err = observe(grid, row, HIGAL, 2500.0)
    result = fit(grid, params_for(waves, flux, err, 2500.0, prefilter=0.8, pivots=waves, delta=0.0))
    assert result.rows[0] == row
    assert result.chi2[0] == pytest.approx(0.0, abs=1e-9)
    assert result.distance[0] == pytest.approx(2500.0)


def test_chi_square_and_deltachi2_against_a_plain_computation(grid: SedGrid) -> None:
    waves, flux, err = observe(grid, 777, ["bol11", "spir3", "spir1", "pacs3", "pacs1", "m1", "i4"], 1800.0)
    flux = [f * s for f, s in zip(flux, (1.3, 0.8, 1.1, 0.95, 1.2, 0.7, 1.0), strict=True)]  # off the grid
    p = params_for(waves, flux, err, 1800.0, weights=(2.0, 1.0, 0.5), delta=25.0)
    expected = brute_chi2(grid, p, 1800.0)
    result = fit(grid, p)
    want = np.flatnonzero(expected <= expected.min() + 25.0)
    assert sorted(result.rows.tolist()) == sorted(want.tolist()) and 1 < len(want) < len(grid)
    np.testing.assert_allclose(result.chi2, expected[result.rows], rtol=1e-10)
    assert np.all(np.diff(result.chi2) >= 0) and result.chi2[0] == pytest.approx(expected.min())
    assert np.all(result.distance == 1800.0)
    assert len(fit(grid, p.model_copy(update={"delta_chi2": 0.0})).rows) == 1


def test_distance_scaling(grid: SedGrid) -> None:
    """Fluxes scale as 1000/d**2: the model observed at 3 kpc fits at 3 kpc, not at 1 kpc."""
    waves, flux, err = observe(grid, 5000, HIGAL, 3000.0)
    at3 = fit(grid, params_for(waves, flux, err, 3000.0, delta=0.0))
    assert at3.rows[0] == 5000 and at3.chi2[0] == pytest.approx(0, abs=1e-9)
    p1 = params_for(waves, flux, err, 1000.0, weights=(2.0, 3.0, 2.0), delta=1e12)  # 2 MIR, 3 FIR, 2 sub-mm bands
    at1 = fit(grid, p1)
    chi_5000 = at1.chi2[at1.rows.tolist().index(5000)]
    assert chi_5000 == pytest.approx(brute_chi2(grid, p1, 1000.0)[5000], rel=1e-12)
    # every band weighs the same, and at 1 kpc the model is 9 times brighter than at 3 kpc
    assert chi_5000 == pytest.approx(sum(((9 * f - f) / e) ** 2 for f, e in zip(flux, err, strict=True)))


def test_distance_search_within_the_prefilter_range(grid: SedGrid) -> None:
    """prefilter 0.5 lets the distance move by (1 + 0.25) either way on a log grid of 21 steps."""
    d_true = 2000.0 * 1.25 ** np.linspace(-1, 1, 21)[16]
    waves, flux, err = observe(grid, 9000, HIGAL, d_true)
    result = fit(grid, params_for(waves, flux, err, 2000.0, prefilter=0.5, pivots=waves[:2], delta=0.0))
    assert result.rows[0] == 9000 and result.chi2[0] == pytest.approx(0, abs=1e-9)
    assert result.distance[0] == pytest.approx(d_true)
    wide = fit(grid, params_for(waves, flux, err, 2000.0, prefilter=0.5, pivots=waves[:2], delta=1e12))
    assert wide.distance.min() >= 2000 / 1.25 * (1 - 1e-12) and wide.distance.max() <= 2000 * 1.25 * (1 + 1e-12)


def test_prefilter_keeps_models_that_can_match_a_pivot(grid: SedGrid) -> None:
    waves, flux, err = observe(grid, 3333, HIGAL, 1500.0)
    p = params_for(waves, flux, err, 1500.0, prefilter=0.8, pivots=[250.0], delta=1e12)
    result = fit(grid, p)
    at_d = grid.fluxes[:, BANDS.index("spir1")] * 1e-3 * (1000 / 1500.0) ** 2
    stretch = 1.04**2
    f250 = flux[waves.index(250.0)]
    inside = np.flatnonzero((at_d >= f250 / stretch) & (at_d <= f250 * stretch))
    assert sorted(result.rows.tolist()) == inside.tolist() and 3333 in inside
    # union over pivots: adding a pivot never loses models
    both = fit(grid, p.model_copy(update={"prefilter_wavelengths": (250.0, 70.0)}))
    assert set(result.rows.tolist()) < set(both.rows.tolist())


def test_prefilter_leaving_no_model_is_a_usage_error(grid: SedGrid) -> None:
    p = params_for([250.0, 70.0], [1e6, 1.0], [1.0, 0.1], 1000.0, prefilter=0.9, pivots=[250.0])
    with pytest.raises(UsageError, match="no model passes the prefilter"):
        fit(grid, p)


def test_upper_limits_only_penalise_models_above_them(grid: SedGrid) -> None:
    # FIR detections (weight 3 over 3 bands) and one MIR limit (weight 1): every c_i is 1
    waves, flux, err = observe(grid, 15_000, ["spir1", "pacs3", "pacs1"], 2000.0)
    m1 = float(grid.fluxes[15_000, BANDS.index("m1")]) * 1e-3 * 0.25
    without = fit(grid, params_for(waves, flux, err, 2000.0, weights=(1, 3, 1), delta=1e12))
    base = dict(zip(without.rows.tolist(), without.chi2, strict=True))
    for limit in (2 * m1, 0.5 * m1):
        p = params_for([*waves, 24.0], [*flux, limit], [*err, 0.2 * limit], 2000.0,
                       flags=[True, True, True, False], weights=(1, 3, 1), delta=1e12)
        with_ul = fit(grid, p)
        model_m1 = grid.fluxes[with_ul.rows, BANDS.index("m1")] * 1e-3 * 0.25
        extra = (np.maximum(model_m1 - limit, 0) / (0.2 * limit)) ** 2
        np.testing.assert_allclose(with_ul.chi2, [base[r] for r in with_ul.rows] + extra, rtol=1e-9, atol=1e-9)
        assert (extra == 0).any() and (extra > 0).any()
        best = with_ul.rows[0]
        assert (best == 15_000) == (limit > m1)  # a limit under the true flux pushes the true model out


def test_weights_silence_a_group(grid: SedGrid) -> None:
    waves, flux, err = observe(grid, 4444, HIGAL, 2200.0)
    p = params_for(waves, flux, err, 2200.0, weights=(0.0, 1.0, 1.0), delta=5.0)
    moved = list(flux)
    moved[waves.index(24.0)] *= 10
    moved[waves.index(8.0)] *= 0.1
    a, b = fit(grid, p), fit(grid, p.model_copy(update={"fluxes": tuple(moved)}))
    assert a.rows.tolist() == b.rows.tolist() and a.rows[0] == 4444
    np.testing.assert_allclose(a.chi2, b.chi2)


# --- the answer -------------------------------------------------------------------------------

def read_sed_fit_output(body: bytes) -> list[dict]:
    """What ``readSedFitOutput`` / ``plotSedFitModel`` take from the answer: columns by name,
    chi2, d, the four histogram columns, and wmod/fmod pairs; strict JSON (no NaN)."""
    def no_constants(name: str) -> None:
        raise AssertionError(f"non-standard JSON constant {name}")

    root = json.loads(body, parse_constant=no_constants)
    assert list(root) == ["columns", "data"]
    index = {name: i for i, name in enumerate(root["columns"])}
    models = []
    for item in root["data"]:
        assert isinstance(item, list) and len(item) == len(root["columns"])
        wmod, fmod = item[index["wmod"]], item[index["fmod"]]
        assert len(fmod) == 17 and len(wmod) == 17
        assert all(isinstance(v, float | int) for v in wmod + fmod)
        model = {name: item[i] for name, i in index.items()}
        model["points"] = list(zip(wmod, fmod, strict=True))
        models.append(model)
    return models


def test_answer_layout(grid: SedGrid) -> None:
    row = int(np.flatnonzero(grid.physical["n_star_zams"] == 0)[0])  # no ZAMS star: zams_* unknown
    waves, flux, err = observe(grid, row, HIGAL, 1000.0)
    result = fit(grid, params_for(waves, flux, err, 1000.0, delta=50.0))
    body = answer_json(grid, result)
    assert json.loads(body)["columns"] == list(COLUMNS) == [
        "clump_mass", "compact_mass_fraction", "clump_upper_age", "dust_temp", "bolometric_luminosity",
        "n_star_tot", "m_star_tot", "n_star_zams", "m_star_zams", "l_star_tot", "l_star_zams",
        "zams_luminosity_1", "zams_mass_1", "zams_temperature_1", "zams_luminosity_2", "zams_mass_2",
        "zams_temperature_2", "zams_luminosity_3", "zams_mass_3", "zams_temperature_3",
        "chi2", "d", "wmod", "fmod"]
    models = read_sed_fit_output(body)
    assert len(models) == len(result.rows) > 1
    best = models[0]
    assert best["zams_mass_1"] is None and best["n_star_zams"] == 0 and isinstance(best["n_star_tot"], int)
    for name in ("clump_mass", "compact_mass_fraction", "clump_upper_age", "dust_temp"):
        assert best[name] == grid.physical[name][row]
    assert best["chi2"] == pytest.approx(0, abs=1e-9) and best["d"] == 1000.0
    assert [w for w, _ in best["points"]] == list(MODEL_BANDS.values())
    np.testing.assert_allclose([f for _, f in best["points"]], grid.fluxes[row] * 1e-3)
    for model, r, d in zip(models, result.rows, result.distance, strict=True):
        np.testing.assert_allclose([f for _, f in model["points"]], grid.fluxes[r] * 1e-3 * (1000 / d) ** 2)


def test_empty_fit_layout(grid: SedGrid) -> None:
    empty = SedFit(rows=np.array([], dtype=np.int64), chi2=np.array([]), distance=np.array([]))
    assert json.loads(answer_json(grid, empty)) == {"columns": list(COLUMNS), "data": []}


# --- parsing ----------------------------------------------------------------------------------

EXAMPLE = "'[500,250,160]_[2.2,8.1,12.3]_[0.22,0.81,1.23]_[1,1,1]_2000_0.8_[1,1,1]_0_[500,250,160]_3'"


def test_the_contract_example_parses() -> None:
    p = parse_searchd(quote(EXAMPLE, safe=""))
    assert p.wavelengths == (500, 250, 160) and p.fluxes == (2.2, 8.1, 12.3) and p.errors == (0.22, 0.81, 1.23)
    assert p.detections == (True, True, True) and p.distance == 2000 and p.prefilter == 0.8
    assert p.weights == (1, 1, 1) and p.prefilter_wavelengths == (500, 250, 160) and p.delta_chi2 == 3
    assert p.bands == ("spir3", "spir1", "pacs3")
    assert parse_searchd(quote(p.to_query(), safe="")) == p
    assert p.to_query() == EXAMPLE
    # the unencoded form, without quotes, and Qt's exponent notation ('+' arrives as %2B)
    assert parse_searchd(EXAMPLE.strip("'")) == p
    q = parse_searchd(quote(EXAMPLE.replace("_2000_", "_2e+03_").replace("[1,1,1]_0", "[1,1,1]_0"), safe=""))
    assert q.distance == 2000
    near = parse_searchd(quote(EXAMPLE.replace("[500,250,160]_3", "[500]_3").replace("[500,", "[22.194,12.08,500,")
                               .replace("[2.2,", "[1,1,2.2,").replace("[0.22,", "[0.1,0.1,0.22,")
                               .replace("[1,1,1]_2000", "[1,0,1,1,1]_2000"), safe=""))
    assert near.bands == ("wise4", "wise3", "spir3", "spir1", "pacs3") and near.detections[1] is False


def _replace(field: int, value: str) -> str:
    parts = EXAMPLE.strip("'").split("_")
    parts[field] = value
    return "'" + "_".join(parts) + "'"


BAD = [
    ("", "no arguments"),
    ("'[500]_[1]'", "expected 10 fields"),
    ("name=" + EXAMPLE, "no name="),
    ("'" + EXAMPLE.strip("'"), "unbalanced quotes"),
    (EXAMPLE[:-1] + "_4'", "expected 10 fields"),
    (_replace(0, "500,250,160"), "wavelengths must be a list"),
    (_replace(0, "[]"), "no wavelengths"),
    (_replace(1, "[2.2,8.1]"), "3 wavelengths but 2 fluxes"),
    (_replace(2, "[0.22,0.81,1.23,1]"), "3 wavelengths but 4 flux errors"),
    (_replace(3, "[1,1]"), "3 wavelengths but 2 detection flags"),
    (_replace(3, "[1,2,1]"), "detection flags are 1"),
    (_replace(1, "[2.2,abc,12.3]"), "fluxes: 'abc' is not a number"),
    (_replace(1, "[2.2,nan,12.3]"), "fluxes: 'nan' is not a number"),
    (_replace(1, "[2.2,1e999,12.3]"), "out of range"),
    (_replace(1, "[2.2,-8.1,12.3]"), "fluxes (Jy) must be positive"),
    (_replace(2, "[0.22,0,1.23]"), "flux errors (Jy) must be positive"),
    (_replace(0, "[21.3,21.3,21.3]"), "no observed wavelength has a model band"),
    (_replace(0, "[500,250,250.5]"), "same model band"),
    (_replace(4, "-9999"), "distance must be positive"),
    (_replace(4, "0"), "distance must be positive"),
    (_replace(4, "far"), "distance: 'far' is not a number"),
    (_replace(5, "1.5"), "prefilter value is between 0 and 1"),
    (_replace(6, "[1,1]"), "three weights"),
    (_replace(6, "[1,-1,1]"), "weights must not be negative"),
    (_replace(6, "[1,0,0]"), "no weight to any observed band"),
    (_replace(7, "1"), "literal 0"),
    (_replace(8, "[70]"), "prefilter wavelength 70 um is not one of the observed"),
    (_replace(9, "-1"), "deltachi2 must not be negative"),
    (_replace(9, "inf"), "deltachi2: 'inf' is not a number"),
    ("%FF%FE", "not percent-encoded UTF-8"),
    ("x" * 5000, "longer than"),
]


@pytest.mark.parametrize("text, message", BAD, ids=[m for _, m in BAD])
def test_bad_arguments(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_searchd(text if text.startswith("%") else quote(text, safe=""))


# --- over HTTP, as the client sends it --------------------------------------------------------

def status_of(body: bytes) -> tuple[str, str]:
    infos = etree.fromstring(body).findall(".//{*}INFO[@name='QUERY_STATUS']")
    assert infos, body[:300]
    return infos[-1].get("value"), infos[-1].text or ""


@pytest.mark.parametrize("path", ["/sedmods/searchd", "/sedmods/searchd/"])
def test_client_fit_over_http(http: httpx.Client, server, grid: SedGrid, path: str) -> None:
    """The client's exact request: numbers as QString::number, the argument percent-encoded whole."""
    row = 11_111
    waves, flux, err = observe(grid, row, HIGAL, 3500.0)
    query = client_query([qt_number(w) for w in waves], flux, err, ["1"] * len(waves), "3500")
    assert "%27%5B500%2C350%2C250" in query and "=" not in query
    url = f"{server.url}{path}?{query}"
    resp = httpx.get(url, timeout=30, follow_redirects=False)
    assert resp.status_code == 200, resp.text[:500]
    assert resp.headers["content-type"] == "application/json"
    models = read_sed_fit_output(resp.content)
    best = min(models, key=lambda m: m["chi2"])  # the client keys its models by chi2
    assert best is models[0] and best["chi2"] < 1e-6  # 6 significant digits in the request
    for name in PHYSICAL_COLUMNS:
        want = grid.physical[name][row]
        assert best[name] is None if (isinstance(want, float) and math.isnan(want)) else best[name] == want
    assert best["d"] == pytest.approx(3500.0, rel=1e-3)
    assert all(m["chi2"] <= best["chi2"] + 3 for m in models)
    # the database's grid gives what the in-memory demo grid gives
    local = fit(grid, parse_searchd(query))
    assert len(models) == len(local.rows)
    assert [m["chi2"] for m in models] == pytest.approx(local.chi2.tolist(), rel=1e-9, abs=1e-12)


def test_upper_limit_over_http(http: httpx.Client, grid: SedGrid) -> None:
    waves, flux, err = observe(grid, 2024, ["bol11", "spir3", "spir1", "pacs3", "pacs1"], 1200.0)
    flux[-1], err[-1] = flux[-1] * 3, flux[-1] * 0.3  # pacs1 70 um: an upper limit above the model
    query = client_query(waves, flux, err, ["1", "1", "1", "1", "0"], "1200", prefilter="0.9",
                         weights=("1", "1", "1"), pivots=waves[:2], delta="0")
    resp = http.get("/sedmods/searchd?" + query)
    assert resp.status_code == 200, resp.text[:500]
    (best,) = read_sed_fit_output(resp.content)
    assert best["clump_mass"] == grid.physical["clump_mass"][2024] and best["chi2"] < 1e-6


@pytest.mark.parametrize("text, message", [
    (_replace(4, "-9999"), "distance must be positive"),
    (_replace(0, "[21.3,21.3,21.3]"), "no observed wavelength has a model band"),
    (_replace(1, "[2.2,abc,12.3]"), "is not a number"),
    ("'[500]_[1]'", "expected 10 fields"),
    ("", "no arguments"),
    (_replace(5, "1").replace("[2.2,8.1,12.3]", "[2200,8100,12300]"), "no model passes the prefilter"),
])
def test_bad_requests_are_dali_errors(http: httpx.Client, text: str, message: str) -> None:
    resp = http.get("/sedmods/searchd" + ("?" + quote(text, safe="") if text else ""))
    assert resp.status_code == 400, resp.text[:300]
    assert resp.headers["content-type"].startswith("application/x-votable+xml")
    status, text_out = status_of(resp.content)
    assert status == "ERROR" and text_out.startswith("UsageError: ") and message in text_out, text_out


def test_points_without_a_model_band_are_left_out() -> None:
    # MSX 21.3 um has no model band: that point is not fitted, the others are
    with_msx = parse_searchd(_replace(0, "[500,21.3,160]").replace("[500,250,160]_3", "[500,160]_3"))
    assert with_msx.wavelengths == (500.0, 160.0) and with_msx.fluxes == (2.2, 12.3)
    assert with_msx.errors == (0.22, 1.23) and with_msx.prefilter_wavelengths == (500.0, 160.0)
