"""The ViaLactea SED fit over the whole model grid: milliseconds per fit against one numpy pass.

Builds the demo grid of 20,000 models in memory (``demo/sedmodels.py``, as the service
holds it after its first request), then times :func:`vo.vialactea.sedfit.fit` (median of
``--repeat`` runs) for the cases below, and, as the baseline measured in the same run, one
plain numpy pass over the same arrays: the chi-square of every model at the given distance
(``((M[:, bands] * k - f) / e)**2`` summed over the bands), the least work any vectorised fit
of the grid must do. The ratio says what the distance search, the prefilter, the weights and
the upper limits cost on top. It also times encoding the answer as JSON and, with ``--url``,
reading the grid from ``compactsources.sed_models`` of a loaded database.

    python -m bench.sedfit [--repeat 50] [--url postgresql://...]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np

from demo.sedmodels import make_sed_models
from vo.vialactea.sedfit import MODEL_BANDS, SedFitParams, SedGrid, answer_json, fit, load_grid

#: Hi-GAL, MIPSGAL 24 um and IRAC 8 um, longest first as the client sends them
BANDS = ["spir3", "spir2", "spir1", "pacs3", "pacs1", "m1", "i4"]
DISTANCE = 2500.0


def _median_ms(func: Callable[[], object], repeat: int) -> float:
    func()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        func()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def _observations(grid: SedGrid, row: int) -> tuple[list[float], list[float], list[float]]:
    idx = [list(MODEL_BANDS).index(b) for b in BANDS]
    rng = np.random.default_rng(1)
    flux = grid.fluxes[row, idx] * 1e-3 * (1000 / DISTANCE) ** 2 * rng.normal(1.0, 0.1, len(idx))
    return [MODEL_BANDS[b] for b in BANDS], flux.tolist(), (0.1 * flux).tolist()


def _cases(grid: SedGrid) -> dict[str, SedFitParams]:
    waves, flux, err = _observations(grid, 12_345)
    base = SedFitParams(wavelengths=tuple(waves), fluxes=tuple(flux), errors=tuple(err),
                        detections=(True,) * len(waves), distance=DISTANCE, prefilter=0.0,
                        weights=(1.0, 1.0, 1.0), prefilter_wavelengths=(), delta_chi2=3.0)
    return {
        "whole grid, 7 detections, 21 distances": base,
        "whole grid, 5 detections + 2 upper limits, 21 distances": base.model_copy(
            update={"detections": (True,) * 5 + (False,) * 2}),
        "whole grid, 7 detections, fixed distance": base.model_copy(update={"prefilter": 1.0}),
        "client default: prefilter 0.8 on every band": base.model_copy(
            update={"prefilter": 0.8, "prefilter_wavelengths": tuple(waves)}),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sedfit", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--url", help="PostgreSQL URL of a database with the demo loaded: also time reading "
                                      "the grid from it")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    grid = SedGrid.from_columns(make_sed_models())
    print(f"SED fit: {len(grid):,} models x {grid.fluxes.shape[1]} bands "
          f"(demo grid generated in {time.perf_counter() - t0:.2f} s)")

    cases = _cases(grid)
    first = next(iter(cases.values()))
    idx = np.array([list(MODEL_BANDS).index(b) for b in first.bands])
    obs, err = np.array(first.fluxes), np.array(first.errors)
    scale = 1e-3 * (1000 / DISTANCE) ** 2

    def baseline() -> np.ndarray:
        return (((grid.fluxes[:, idx] * scale - obs) / err) ** 2).sum(axis=1)

    base_ms = _median_ms(baseline, args.repeat)
    print(f"  {'baseline: one numpy pass (chi-square at one distance, no options)':<66} {base_ms:7.2f} ms")
    for name, params in cases.items():
        ms = _median_ms(lambda p=params: fit(grid, p), args.repeat)
        kept = len(fit(grid, params).rows)
        print(f"  {name:<66} {ms:7.2f} ms  ratio {ms / base_ms:5.1f}  ({kept} models kept)")

    for delta in (3.0, 1e12):
        result = fit(grid, first.model_copy(update={"delta_chi2": delta}))
        ms = _median_ms(lambda r=result: answer_json(grid, r), max(3, args.repeat // 10))
        size = len(answer_json(grid, result))
        print(f"  JSON answer, {len(result.rows):>6,} models: {ms:8.2f} ms, {size / 1e6:.2f} MB")

    if args.url:
        from psycopg_pool import AsyncConnectionPool

        async def read() -> float:
            async with AsyncConnectionPool(args.url, min_size=1, max_size=1) as pool:
                await load_grid(pool)  # warm
                t0 = time.perf_counter()
                loaded = await load_grid(pool)
                took = time.perf_counter() - t0
                assert len(loaded) == len(grid)
                return took

        print(f"  reading the grid from the database (once per process): {asyncio.run(read()) * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
