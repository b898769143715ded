"""Stacking (issue 19) on synthetic stamps: faint injected sources, Gaussian noise, numpy truth."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from vo.errors import UsageError
from vo.stamps.stack import Stacker, scale_about_centre
from vo.stamps.stamp import annulus_noise, subtract_background

SIZE = 41  # pixels: the source at the centre pixel (20, 20)
SIGMA_PSF = 2.0  # pixels


def stamps(n: int, seed: int, amplitude: float = 0.5, noise: float = 1.0) -> list[np.ndarray]:
    """``n`` stamps of unit-rms noise, each with a Gaussian source of peak ``amplitude`` (x noise) at the centre."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    source = amplitude * noise * np.exp(-0.5 * ((x - 20) ** 2 + (y - 20) ** 2) / SIGMA_PSF**2)
    return [source + rng.normal(0.0, noise, (SIZE, SIZE)) for _ in range(n)]


@pytest.mark.parametrize("method", ["mean", "weighted", "median"])
def test_400_faint_sources_stack_to_8_sigma(method) -> None:
    stacker = Stacker(method)
    for data in stamps(400, seed=1):
        assert stacker.add(data, fits.Header({"SURVEY": "synthetic"}))
    stack, coverage, header = stacker.result()
    assert (coverage == 400).all() and header["STKN"] == 400 and header["STKMETH"] == method
    # each source alone is at 0.5 sigma; 400 of them reach 0.5 x sqrt(400) = 10 sigma with the mean;
    # the median of Gaussian noise is noisier by sqrt(pi/2), so it expects 10 x 0.8 = 8 (with scatter)
    assert header["STKSNR"] >= (6.5 if method == "median" else 8), header["STKSNR"]
    assert header["STKCENT"] == pytest.approx(0.5, abs=0.5 / 8 * 3)
    assert header["STKNOISE"] == pytest.approx(annulus_noise(stack), rel=1e-6)


@pytest.mark.parametrize("method", ["mean", "weighted"])
def test_the_stack_noise_falls_as_one_over_sqrt_n(method) -> None:
    noises = {}
    for n in (25, 100, 400):
        stacker = Stacker(method)
        for data in stamps(n, seed=n):
            stacker.add(data)
        noises[n] = stacker.result()[2]["STKNOISE"]
    for n, noise in noises.items():
        assert noise == pytest.approx(1.0 / np.sqrt(n), rel=0.2), (n, noise)


def test_weighted_stacking_down_weights_noisy_stamps() -> None:
    quiet = stamps(50, seed=3)
    loud = stamps(50, seed=4, noise=10.0, amplitude=0.05)  # same source, ten times the noise
    mean, weighted = Stacker("mean"), Stacker("weighted")
    for data in quiet + loud:
        mean.add(data)
        weighted.add(data)
    # inverse-variance weights: about the noise of the quiet half alone, 1/sqrt(50)
    assert weighted.result()[2]["STKNOISE"] == pytest.approx(1 / np.sqrt(50), rel=0.2)
    assert mean.result()[2]["STKNOISE"] > 3 * weighted.result()[2]["STKNOISE"]


def test_coverage_counts_the_stamps_with_data() -> None:
    a, b = stamps(2, seed=5)
    b[:, :10] = np.nan  # the second stamp is cut by a survey edge
    stacker = Stacker("mean")
    stacker.add(a)
    stacker.add(b)
    stack, coverage, _ = stacker.result()
    assert (coverage[:, :10] == 1).all() and (coverage[:, 10:] == 2).all()
    np.testing.assert_allclose(stack[:, :10], a[:, :10], rtol=1e-6)
    assert not stacker.add(np.zeros((5, 5)))  # another shape is refused, not stacked


def test_bad_method_and_empty_stack() -> None:
    with pytest.raises(UsageError, match="STACK"):
        Stacker("sum")
    with pytest.raises(UsageError, match="no stamp"):
        Stacker("mean").result()


def test_background_is_the_annulus_median_and_skipped_when_blank() -> None:
    rng = np.random.default_rng(7)
    data = 5.0 + rng.normal(0, 0.1, (31, 31))
    out, level = subtract_background(data, "median")
    y, x = np.mgrid[0:31, 0:31]
    r = np.hypot(x - 15, y - 15)
    assert level == pytest.approx(float(np.median(data[(r >= 10.5) & (r <= 15)])))
    np.testing.assert_allclose(out, data - level)
    _, clipped = subtract_background(data, "sigmaclip")
    assert clipped == pytest.approx(5.0, abs=0.02)
    blank = data.copy()
    blank[r >= 8] = np.nan
    same, none = subtract_background(blank, "median")
    assert none is None and same is blank


def _width(stack: np.ndarray) -> float:
    """The Gaussian sigma of a centred profile, pixels, from its second moment (numpy)."""
    n = stack.shape[0]
    y, x = np.mgrid[0:n, 0:n]
    c = (n - 1) / 2
    w = np.where(np.isfinite(stack), stack, 0.0)
    return float(np.sqrt(np.sum(w * ((x - c) ** 2 + (y - c) ** 2)) / np.sum(w) / 2))


def test_stamps_scaled_by_their_source_size_stack_to_the_common_size() -> None:
    """Injected Gaussians of sigma 1.5 ... 4 px, each scaled by common/own size: the stacked profile's
    sigma is the common size; without scaling it is not (the mean of different widths)."""
    rng = np.random.default_rng(7)
    n, common = 61, 2.5
    y, x = np.mgrid[0:n, 0:n]
    c = (n - 1) / 2
    scaled, plain = Stacker("mean"), Stacker("mean")
    sigmas = rng.uniform(1.5, 4.0, 60)
    for sigma in sigmas:
        data = np.exp(-0.5 * ((x - c) ** 2 + (y - c) ** 2) / sigma**2) + rng.normal(0, 0.002, (n, n))
        assert scaled.add(scale_about_centre(data, common / sigma))
        assert plain.add(data)
    got = _width(scaled.result()[0])
    assert got == pytest.approx(common, rel=0.05)
    assert abs(_width(plain.result()[0]) - common) > 0.1 * common
    # magnifying keeps the centre where it was and marks what came from outside the stamp as blank
    shrunk = scale_about_centre(np.ones((n, n)), 0.5)
    assert np.isnan(shrunk[0, 0]) and shrunk[int(c), int(c)] == 1.0
