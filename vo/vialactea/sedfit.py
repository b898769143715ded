"""The theoretical SED fit of the ViaLactea client (``/sedmods/searchd``): parse, fit, answer.

The client sends one quoted string, percent-encoded as a whole after ``?`` (no ``name=``)::

    '[w]_[f]_[ef]_[flags]_dist_prefilter_[wMIR,wFIR,wSubmm]_0_[w]_deltachi2'

wavelengths in um (longest first), fluxes and their errors in Jy, flags 1 for a detection and 0
for an upper limit, the distance in pc, the prefilter value, three weights, a literal 0 (the
old service's "local" switch), the prefilter ("pivot") wavelengths and delta-chi2.
:func:`parse_searchd` turns it into a :class:`SedFitParams` or raises :class:`UsageError`.

The fit compares the observations with every model of ``compactsources.sed_models`` (fluxes in
mJy for 1 kpc; at ``d`` pc a model gives ``flux * 1000 / d**2`` Jy, the client's own scale). It is
vectorised over the whole grid (:class:`SedGrid`, numpy arrays held in memory) and defined as follows:

- **bands**: each wavelength maps to the model band within 1 % of it (:data:`MODEL_BANDS`);
  any other wavelength, or two wavelengths on one band, is a usage error.
- **distance**: with ``p`` the prefilter value (0 to 1) and ``t = (1 - p)**2``, every model is
  tried at 21 distances spread evenly in log from ``d / (1 + t)`` to ``d * (1 + t)`` (only ``d``
  itself when ``p = 1``) and keeps its best; ``d`` in the answer is that distance. So 0.8 lets
  the distance move by 4 %, 0.5 by 25 %, 0 by a factor of 2.
- **prefilter**: a model takes part when, for at least one pivot wavelength, some distance of
  that range makes it match the observation: its flux at ``d`` lies within ``f / (1 + t)**2`` ..
  ``f * (1 + t)**2`` for a detection, or its flux at the farthest distance is below the limit
  for an upper limit. No pivot (``[]``) means no prefilter. When no model passes, the answer is
  a 400 that says so: the client plots the first model unconditionally and cannot take an
  empty list.
- **chi-square**: ``chi2 = sum_i c_i * r_i**2`` with ``r_i = (F_i - f_i) / ef_i`` for a
  detection. An upper limit only penalises a model above it, ``r_i = max(0, F_i - f_i) / ef_i``,
  so any model under the limit agrees with it and one above it pays as for a detection.
- **weights**: the three weights go to mid-IR (< 25 um), far-IR (25 to 250 um) and
  sub-millimetre (> 250 um) bands. A group's weight is shared by its observed bands,
  ``c_i = (w_g / n_g)``, scaled so the largest ``c_i`` is 1: with equal weights and bands spread
  evenly the chi-square is the plain one.
- **answer**: the models with ``chi2 <= min(chi2) + deltachi2``, best first, as JSON
  ``{"columns": [...], "data": [[...], ...]}`` with the columns of :data:`COLUMNS`: the physical
  parameters, ``chi2``, ``d`` (pc), ``wmod`` (the 17 band wavelengths, um) and ``fmod`` (the 17
  model fluxes in Jy at ``d``, in the order of :data:`MODEL_BANDS`). Unknown values are ``null``.

No HTTP here; ``app/routers/sedfit.py`` loads the grid once per process and runs the fit in a
worker thread.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import numpy as np
import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vo.errors import NotFoundError, TransientError, UsageError
from vo.shapes import parse_number

__all__ = [
    "COLUMNS", "DISTANCE_STEPS", "MODEL_BANDS", "PHYSICAL_COLUMNS", "SedFit", "SedFitParams", "SedGrid",
    "answer_json", "fit", "load_grid", "parse_searchd", "wavelength_band",
]

#: The 17 model bands of ``compactsources.sed_models``, in the client's ``fmod`` order, with their
#: wavelengths in um.
MODEL_BANDS: dict[str, float] = {
    "wise1": 3.4, "i1": 3.6, "i2": 4.5, "wise2": 4.6, "i3": 5.8, "i4": 8.0, "wise3": 12.0,
    "wise4": 22.0, "m1": 24.0, "pacs1": 70.0, "pacs2": 100.0, "pacs3": 160.0, "spir1": 250.0,
    "spir2": 350.0, "spir3": 500.0, "laboc": 870.0, "bol11": 1100.0,
}

#: The physical columns of a model, in the order of the answer (the client finds them by name).
PHYSICAL_COLUMNS: tuple[str, ...] = (
    "clump_mass", "compact_mass_fraction", "clump_upper_age", "dust_temp", "bolometric_luminosity",
    "n_star_tot", "m_star_tot", "n_star_zams", "m_star_zams", "l_star_tot", "l_star_zams",
    *(f"zams_{q}_{k}" for k in (1, 2, 3) for q in ("luminosity", "mass", "temperature")),
)

#: The columns of the answer (``readSedFitOutput`` reads them by name).
COLUMNS: tuple[str, ...] = (*PHYSICAL_COLUMNS, "chi2", "d", "wmod", "fmod")

#: Distances tried per model when the prefilter leaves the distance free.
DISTANCE_STEPS = 21

_BAND_NAMES = tuple(MODEL_BANDS)
_BAND_WAVES = np.array(list(MODEL_BANDS.values()))
#: a wavelength names a band when it is within this fraction of the band's wavelength (22.194 um is
#: WISE 22 um, 12.08 um is WISE 12 um); the closest bands, 4.5 and 4.6 um, are 2.2 % apart.
_BAND_TOLERANCE = 0.01
#: the weight groups: mid-IR below 25 um, far-IR up to 250 um, sub-millimetre beyond.
_GROUP_EDGES = (25.0, 250.0)
_FIELDS = ("wavelengths", "fluxes", "flux errors", "detection flags", "distance", "prefilter", "weights",
           "the literal 0", "prefilter wavelengths", "deltachi2")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
#: relative slack on the prefilter's bounds, so a model matching exactly is never lost to rounding
_EPS = 1e-9
_MAX_QUERY = 4096
#: bounds that keep the chi-square's squares and inverse squares within double range, far beyond
#: any real source: fluxes and flux errors at most 1e30 Jy, errors at least 1e-30 Jy, distances
#: 1e-3 pc (200 au) to 1e9 pc
_FLUX_MAX = 1e30
_ERROR_MIN = 1e-30
_DISTANCE_RANGE = (1e-3, 1e9)


def wavelength_band(wavelength: float) -> str | None:
    """The model band at ``wavelength`` (um), within 1 %; None when there is none."""
    i = int(np.argmin(np.abs(_BAND_WAVES - wavelength)))
    return _BAND_NAMES[i] if abs(_BAND_WAVES[i] - wavelength) <= _BAND_TOLERANCE * _BAND_WAVES[i] else None


class SedFitParams(BaseModel):
    """One ``/sedmods/searchd`` request: observations (longest wavelength first) and fit settings."""

    model_config = ConfigDict(frozen=True)
    wavelengths: tuple[float, ...] = Field(min_length=1, max_length=len(MODEL_BANDS))
    fluxes: tuple[float, ...]
    errors: tuple[float, ...]
    detections: tuple[bool, ...]
    distance: float = Field(gt=0, allow_inf_nan=False)
    prefilter: float = Field(ge=0, le=1)
    weights: tuple[float, float, float]
    prefilter_wavelengths: tuple[float, ...]
    delta_chi2: float = Field(ge=0, allow_inf_nan=False)

    @property
    def bands(self) -> tuple[str, ...]:
        """The model band of each wavelength (checked by :func:`parse_searchd`)."""
        return tuple(wavelength_band(w) or "" for w in self.wavelengths)

    @property
    def tolerance(self) -> float:
        """``t = (1 - prefilter)**2``: the distance may move by a factor ``1 + t`` either way."""
        return (1.0 - self.prefilter) ** 2

    def to_query(self) -> str:
        """The argument as the client writes it, before percent-encoding: the inverse of
        :func:`parse_searchd`."""
        def lst(values: Sequence[float]) -> str:
            return "[" + ",".join(_num(v) for v in values) + "]"

        parts = [lst(self.wavelengths), lst(self.fluxes), lst(self.errors),
                 "[" + ",".join("1" if d else "0" for d in self.detections) + "]",
                 _num(self.distance), _num(self.prefilter), lst(self.weights), "0",
                 lst(self.prefilter_wavelengths), _num(self.delta_chi2)]
        return "'" + "_".join(parts) + "'"


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(float(v))


def _number(text: str, what: str, *, hi: float | None = None) -> float:
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        raise UsageError(f"SED fit: {what}: {text!r} is not a number")
    return parse_number(text, f"SED fit: {what}", hi=hi)


def _list(text: str, what: str, *, hi: float | None = None) -> list[float]:
    text = text.strip()
    if not (text.startswith("[") and text.endswith("]")):
        raise UsageError(f"SED fit: {what} must be a list in brackets like [500,250,160], not {text!r}")
    inner = text[1:-1].strip()
    return [_number(v, what, hi=hi) for v in inner.split(",")] if inner else []


def parse_searchd(query: str) -> SedFitParams:
    """The request in a raw ``/sedmods/searchd`` query string (percent-encoded as the client
    sends it); :class:`UsageError` naming the faulty field otherwise."""
    if len(query) > _MAX_QUERY:
        raise UsageError(f"SED fit: the query string is longer than {_MAX_QUERY} characters")
    try:
        text = unquote(query, errors="strict").strip()
    except UnicodeDecodeError:
        raise UsageError("SED fit: the query string is not percent-encoded UTF-8") from None
    if not text:
        raise UsageError("SED fit: no arguments; expected "
                         "'[w]_[f]_[ef]_[flags]_dist_prefilter_[wMIR,wFIR,wSubmm]_0_[w]_deltachi2'")
    if "=" in text:
        raise UsageError("SED fit: the argument is the whole query string, with no name= before it")
    if text[0] == "'" or text[-1] == "'":
        if len(text) < 2 or text[0] != "'" or text[-1] != "'":
            raise UsageError("SED fit: unbalanced quotes around the argument")
        text = text[1:-1]
    fields = text.split("_")
    if len(fields) != len(_FIELDS):
        raise UsageError(f"SED fit: expected {len(_FIELDS)} fields separated by '_' "
                         f"({', '.join(_FIELDS)}), got {len(fields)}")
    waves = _list(fields[0], "wavelengths")
    fluxes = _list(fields[1], "fluxes", hi=_FLUX_MAX)
    errors = _list(fields[2], "flux errors", hi=_FLUX_MAX)
    flags = _list(fields[3], "detection flags")
    n = len(waves)
    if n == 0:
        raise UsageError("SED fit: no wavelengths given")
    for values, what in ((fluxes, "fluxes"), (errors, "flux errors"), (flags, "detection flags")):
        if len(values) != n:
            raise UsageError(f"SED fit: {n} wavelengths but {len(values)} {what}")
    if any(f not in (0.0, 1.0) for f in flags):
        raise UsageError("SED fit: detection flags are 1 (detection) or 0 (upper limit)")
    # Points at a wavelength no model band has (the client's SEDs often carry MSX 21 um) are left
    # out of the fit, as the INAF fit did; refusing them would fail the client's usual request.
    keep = [i for i, w in enumerate(waves) if wavelength_band(w) is not None]
    if not keep:
        known = ", ".join(f"{v:g}" for v in MODEL_BANDS.values())
        raise UsageError(f"SED fit: no observed wavelength has a model band (the models have {known} um)")
    waves, fluxes, errors, flags = ([v[i] for i in keep] for v in (waves, fluxes, errors, flags))
    seen: dict[str, float] = {}
    for w in waves:
        band = wavelength_band(w)
        assert band is not None  # the wavelengths without a model band were left out above
        if band in seen:
            raise UsageError(f"SED fit: wavelengths {seen[band]:g} and {w:g} um fall on the same model band")
        seen[band] = w
    if any(f <= 0 for f in fluxes):
        raise UsageError("SED fit: fluxes (Jy) must be positive")
    if any(e <= 0 for e in errors):
        raise UsageError("SED fit: flux errors (Jy) must be positive")
    if any(e < _ERROR_MIN for e in errors):
        raise UsageError(f"SED fit: flux errors (Jy) must be at least {_ERROR_MIN:g}")
    distance = _number(fields[4], "distance")
    if distance <= 0:
        raise UsageError(f"SED fit: the distance must be positive, in pc (got {fields[4].strip()}; "
                         "the catalogue's -9999 means the distance is unknown)")
    if not _DISTANCE_RANGE[0] <= distance <= _DISTANCE_RANGE[1]:
        raise UsageError(f"SED fit: the distance (pc) must be within {_DISTANCE_RANGE[0]:g} and "
                         f"{_DISTANCE_RANGE[1]:g}, not {fields[4].strip()}")
    prefilter = _number(fields[5], "prefilter")
    if not 0 <= prefilter <= 1:
        raise UsageError(f"SED fit: the prefilter value is between 0 and 1, not {prefilter:g}")
    weights = _list(fields[6], "weights")
    if len(weights) != 3:
        raise UsageError(f"SED fit: three weights [mid-IR,far-IR,sub-mm] expected, got {len(weights)}")
    if any(w < 0 for w in weights):
        raise UsageError("SED fit: weights must not be negative")
    if fields[7].strip() != "0":
        raise UsageError(f"SED fit: the eighth field is the literal 0, not {fields[7].strip()!r}")
    pivots = [p for p in _list(fields[8], "prefilter wavelengths") if wavelength_band(p) is not None]
    by_band = {band: w for w, band in ((w, wavelength_band(w)) for w in waves)}
    for p in pivots:
        if wavelength_band(p) not in by_band:
            raise UsageError(f"SED fit: prefilter wavelength {p:g} um is not one of the observed wavelengths")
    delta = _number(fields[9], "deltachi2")
    if delta < 0:
        raise UsageError(f"SED fit: deltachi2 must not be negative, not {delta:g}")
    groups = {_group(w) for w in waves}
    if all(weights[g] == 0 for g in groups):
        raise UsageError("SED fit: the weights give no weight to any observed band")
    try:
        return SedFitParams(wavelengths=tuple(waves), fluxes=tuple(fluxes), errors=tuple(errors),
                            detections=tuple(f == 1.0 for f in flags), distance=distance, prefilter=prefilter,
                            weights=(weights[0], weights[1], weights[2]), prefilter_wavelengths=tuple(pivots),
                            delta_chi2=delta)
    except ValidationError as exc:  # the checks above cover these; kept as a guard with a clean message
        raise UsageError(f"SED fit: {exc.errors()[0]['msg']}") from None


def _group(wavelength: float) -> int:
    return 0 if wavelength < _GROUP_EDGES[0] else (1 if wavelength <= _GROUP_EDGES[1] else 2)


@dataclass(frozen=True, eq=False)
class SedGrid:
    """The model grid in memory: ``fluxes`` (models x 17 bands, mJy at 1 kpc, :data:`MODEL_BANDS`
    order), ``ids`` and the physical columns (float, NaN where unknown; integer columns stay int)."""

    ids: np.ndarray
    fluxes: np.ndarray
    physical: Mapping[str, np.ndarray]

    @classmethod
    def from_columns(cls, columns: Mapping[str, Any]) -> SedGrid:
        """The grid from column arrays named as in ``compactsources.sed_models``, sorted by id.

        Models with a missing or non-finite flux in any band are left out: they cannot be fitted.
        """
        ids = np.asarray(columns["id"], dtype=np.int64)
        fluxes = np.column_stack([_floats(columns[b]) for b in MODEL_BANDS])
        usable = np.flatnonzero(np.isfinite(fluxes).all(axis=1))
        order = usable[np.argsort(ids[usable], kind="stable")]
        fluxes = fluxes[order]
        physical = {}
        for name in PHYSICAL_COLUMNS:
            raw = np.asarray(columns[name])
            values = raw.astype(np.int64) if raw.dtype.kind in "iu" else _floats(raw)
            values = values[order]
            values.setflags(write=False)
            physical[name] = values
        fluxes = np.ascontiguousarray(fluxes)
        fluxes.setflags(write=False)
        ids = ids[order]
        ids.setflags(write=False)
        return cls(ids=ids, fluxes=fluxes, physical=physical)

    def __len__(self) -> int:
        return len(self.ids)


def _floats(values: Any) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype == object:  # NULLs from the database
        arr = np.array([np.nan if v is None else v for v in arr], dtype=np.float64)
    return arr.astype(np.float64)


async def load_grid(pool: AsyncConnectionPool) -> SedGrid:
    """Read ``compactsources.sed_models`` into memory (about 6 MB for 20,000 models).

    The models are public (the table has no access column), so this reads them as the
    service. :class:`NotFoundError` when the table is empty, :class:`TransientError` when
    the database cannot be reached.
    """
    names = ("id", *MODEL_BANDS, *PHYSICAL_COLUMNS)
    # one row of arrays: a single round trip and a few large values instead of 20,000 rows
    statement = sql.SQL("SELECT {} FROM compactsources.sed_models").format(
        sql.SQL(", ").join(sql.SQL("array_agg({c} ORDER BY id)").format(c=sql.Identifier(n)) for n in names))
    try:
        async with pool.connection() as conn, conn.cursor(binary=True) as cur:
            await cur.execute(statement)
            row = await cur.fetchone()
    except (psycopg.OperationalError, PoolTimeout) as exc:
        raise TransientError("the database is unavailable, try again later") from exc
    if row is None or row[0] is None:
        raise NotFoundError("no SED models are published (compactsources.sed_models is empty)")
    return SedGrid.from_columns(dict(zip(names, row, strict=True)))


@dataclass(frozen=True, eq=False)
class SedFit:
    """The models kept by a fit, best first: their row in the grid, chi-square and distance (pc)."""

    rows: np.ndarray
    chi2: np.ndarray
    distance: np.ndarray


def _jy_per_model_unit(distance: np.ndarray | float) -> np.ndarray:
    """Jy at ``distance`` pc per mJy at 1 kpc: the contract's 1000 / d**2, then mJy to Jy (an
    array, of no dimension for one distance)."""
    return 1e-3 * (1000.0 / np.asarray(distance)) ** 2


def fit(grid: SedGrid, params: SedFitParams) -> SedFit:
    """Fit ``params`` against every model of ``grid`` (the rules in the module docstring).

    Vectorised: one (models x bands) pass for the prefilter, one for the chi-square's terms,
    one (distances x models) array for the distance search, and one exact pass at the best
    distance; upper limits add one (models x limits) pass per distance.
    """
    if len(grid) == 0:
        raise NotFoundError("no SED models are published (compactsources.sed_models is empty)")
    band_index = np.array([_BAND_NAMES.index(b) for b in params.bands])
    obs = np.array(params.fluxes)
    err = np.array(params.errors)
    det = np.array(params.detections)
    groups = np.array([_group(MODEL_BANDS[b]) for b in params.bands])
    share = np.array(params.weights)[groups] / np.bincount(groups, minlength=3)[groups]
    weight = share / share.max() / err**2

    at_d = grid.fluxes[:, band_index] * _jy_per_model_unit(params.distance)  # Jy at the given distance
    t = params.tolerance
    stretch = (1.0 + t) ** 2  # largest flux ratio the distance range allows
    if params.prefilter_wavelengths:
        keep = np.zeros(len(grid), dtype=bool)
        for w in params.prefilter_wavelengths:
            j = params.bands.index(wavelength_band(w) or "")
            col = at_d[:, j]
            if det[j]:
                keep |= (col >= obs[j] / stretch * (1 - _EPS)) & (col <= obs[j] * stretch * (1 + _EPS))
            else:
                keep |= col / stretch <= obs[j] * (1 + _EPS)
        rows = np.flatnonzero(keep)
        if rows.size == 0:
            raise UsageError(f"SED fit: no model passes the prefilter {params.prefilter:g} at "
                             f"{', '.join(f'{w:g}' for w in params.prefilter_wavelengths)} um; "
                             "lower the prefilter value (0 lets the distance vary by a factor of 2)")
        at_d = at_d[rows]
    else:
        rows = np.arange(len(grid))

    steps = DISTANCE_STEPS if t > 0 else 1
    distances = params.distance * (1.0 + t) ** np.linspace(-1.0, 1.0, steps) if steps > 1 \
        else np.array([params.distance])
    scales = (params.distance / distances) ** 2  # flux at each distance over flux at the given one
    # detections: chi2(s) = s^2 P - 2 s Q + R per model, from one pass over the models
    a, f, w = at_d[:, det], obs[det], weight[det]
    p_term = (a * a) @ w
    q_term = a @ (w * f)
    r_term = float(np.sum(w * f * f))
    chi = scales[:, None] ** 2 * p_term - 2.0 * scales[:, None] * q_term + r_term
    if not det.all():
        a_ul, lim, w_ul = at_d[:, ~det], obs[~det], weight[~det]
        for i, s in enumerate(scales):
            over = np.maximum(a_ul * s - lim, 0.0)
            chi[i] += (over * over) @ w_ul
    best = np.argmin(chi, axis=0)
    # the chi-square again at each model's best distance, term by term: the expanded form above
    # loses digits to cancellation when a model matches closely
    resid = at_d * scales[best][:, None] - obs
    resid[:, ~det] = np.maximum(resid[:, ~det], 0.0)
    chi2 = (resid * resid) @ weight
    kept = np.flatnonzero(chi2 <= chi2.min() + params.delta_chi2)
    order = kept[np.lexsort((grid.ids[rows[kept]], chi2[kept]))]
    return SedFit(rows=rows[order], chi2=chi2[order], distance=distances[best[order]])


def answer_json(grid: SedGrid, result: SedFit) -> bytes:
    """The answer document ``{"columns": [...], "data": [[...], ...]}`` as UTF-8 JSON."""
    rows = result.rows
    fmod = grid.fluxes[rows] * _jy_per_model_unit(result.distance)[:, None]
    cols = [_json_values(grid.physical[name][rows]) for name in PHYSICAL_COLUMNS]
    cols += [_json_values(result.chi2), _json_values(result.distance)]
    wmod = list(MODEL_BANDS.values())
    data = [[*values, wmod, model] for *values, model in zip(*cols, fmod.tolist(), strict=True)]
    return json.dumps({"columns": list(COLUMNS), "data": data}, allow_nan=False,
                      separators=(",", ":")).encode()


def _json_values(values: np.ndarray) -> list[Any]:
    """Plain Python numbers, None for NaN (JSON has no NaN; the client reads null as 0)."""
    out = values.tolist()
    if values.dtype.kind == "f" and np.isnan(values).any():
        out = [None if v != v else v for v in out]
    return out
