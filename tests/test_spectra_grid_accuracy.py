"""The grid route (bandwidth → 0) against the exact per-site route at random off-node
(|CQ|, η, δiso), and the grid's FFT sum against a direct NumPy sum of shifted node lines."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from spectra_helpers import TEST_GRID, l1_half

from ase_mlnmr.spectra import PPMAxis, Sites, Spectrometer, simulate_spectrum
from ase_mlnmr.spectra.central_transition import ct_prefactor_ppm
from ase_mlnmr.spectra.grid import NodeWeights
from ase_mlnmr.spectra.kde import kde_node_weights
from ase_mlnmr.spectra.simulate import SITE_GRID, lineshape_grid

#: the default node layout of the grid route with the tests' coarser powder tables (256 α,
#: 8192 y; docs/spectra.md: the node layout, not the tables, sets the off-node error)
SITE_TEST_GRID = dataclasses.replace(SITE_GRID, n_alpha=TEST_GRID.n_alpha, n_y=TEST_GRID.n_y)


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("ASE_MLNMR_CACHE", str(tmp_path_factory.getbasetemp() / "spectra_cache"))


@pytest.mark.parametrize("isotope, mode, ppm_range", [
    ("23Na", "mas", (-90, 30)), ("23Na", "static", (-250, 100)),
    ("27Al", "mas", (-110, 40)), ("27Al", "static", (-300, 120)),
])
def test_grid_route_off_node_random_points(isotope, mode, ppm_range):
    """I = 3/2 (23Na) and 5/2 (27Al) at 11.7 T over the documented domain: lines 60–3000
    bins wide (log-uniform; width |P|·Δg, Δg = 3/7 MAS, 25/24 static at η = 0), η in
    [0.05, 1], δiso between bin centres: each ≤ 2 % L1 against the per-site route."""
    rng = np.random.default_rng(20261130)
    spectrometer = Spectrometer(isotope, 11.7)
    axis = PPMAxis.from_range(*ppm_range, 4096)
    g_range = 3 / 7 if mode == "mas" else 25 / 24
    width_per_mhz2 = abs(float(ct_prefactor_ppm(1.0, spectrometer))) * g_range / axis.step_ppm
    widths = np.exp(rng.uniform(np.log(60.0), np.log(3000.0), 5))
    info = None
    for cq, eta, delta in zip(np.sqrt(widths / width_per_mhz2), rng.uniform(0.05, 1.0, 5), rng.uniform(-5, 5, 5)):
        site = Sites(isotope, [delta], [cq], [eta])
        exact = simulate_spectrum(site, spectrometer, axis, mode, route="sites")
        on_grid = simulate_spectrum(site, spectrometer, axis, mode, route="grid", grid_settings=SITE_TEST_GRID)
        info = on_grid.info["grid"]
        assert l1_half(on_grid.intensity, exact.intensity, axis.step_ppm) <= 0.02, (cq, eta, delta)
    assert info["cq_relative_step"] == SITE_GRID.cq_relative_step


@pytest.mark.parametrize("mode", ["mas", "static"])
def test_default_grid_route_at_issue_point(mode):
    """CQ 2.37 MHz, η 0.33 (issue 9) through the grid route's default settings."""
    spectrometer = Spectrometer("23Na", 11.7)
    axis = PPMAxis.from_range(-120, 60, 3000)
    site = Sites("23Na", [1.3], [2.37], [0.33])
    exact = simulate_spectrum(site, spectrometer, axis, mode, route="sites")
    on_grid = simulate_spectrum(site, spectrometer, axis, mode, route="grid", grid_settings=SITE_TEST_GRID)
    assert l1_half(on_grid.intensity, exact.intensity, axis.step_ppm) <= 0.02


def test_adapted_cq_nodes_are_geometric():
    """Above the narrow-line nodes, consecutive |CQ| nodes differ by the factor 1 + r."""
    spectrometer = Spectrometer("23Na", 11.7)
    grid = lineshape_grid(spectrometer, 0.03, 4.0, "mas", SITE_TEST_GRID)
    ratios = grid.cq_nodes[5:] / grid.cq_nodes[4:-1]
    assert np.allclose(ratios, 1.0 + SITE_GRID.cq_relative_step)
    assert grid.cq_nodes[0] == 0.0 and grid.cq_nodes[-1] >= 4.0


@pytest.mark.parametrize("gaussian_sd_ppm", [0.0, 0.4])
def test_grid_sum_equals_direct_sum_of_shifted_lines(gaussian_sd_ppm):
    """grid.spectrum (FFT over the occupied span of shifts, blocks of CQ rows) against
    Σ_k w_k I_g(ν_j − δ_k) summed directly, then a Gaussian convolved by direct sum."""
    rng = np.random.default_rng(3)
    spectrometer = Spectrometer("23Na", 11.7)
    axis = PPMAxis.from_range(-40, 20, 600)
    grid = lineshape_grid(spectrometer, axis.step_ppm, 3.0, "mas", TEST_GRID)
    m = 60
    weights = NodeWeights(rng.integers(0, grid.n_nodes, m), rng.uniform(-50, 650, m), rng.uniform(0.1, 1.0, m))
    fast = grid.spectrum(weights, axis, gaussian_sd_ppm=gaussian_sd_ppm)
    shapes = grid.node_shapes(weights.nodes)  # offsets (offset_low + i)·step
    pad = 60  # the Gaussian's tails reach into the window from this far out
    wide = np.zeros(axis.count + 2 * pad)
    j = np.arange(-pad, axis.count + pad)
    for shape, shift, w in zip(shapes, weights.shift_index, weights.weight):
        k0 = int(np.floor(shift))
        for k, wk in ((k0, w * (1 - (shift - k0))), (k0 + 1, w * (shift - k0))):
            i = j - k - grid.offset_low
            ok = (i >= 0) & (i < len(shape))
            wide[ok] += wk * shape[i[ok]]
    if gaussian_sd_ppm > 0:
        x = np.arange(-pad, pad + 1) * axis.step_ppm
        kernel = np.exp(-0.5 * (x / gaussian_sd_ppm) ** 2)
        wide = np.convolve(wide, kernel / kernel.sum(), mode="same")
    direct = wide[pad:pad + axis.count] / axis.step_ppm
    assert np.abs(direct).max() > 0
    np.testing.assert_allclose(fast, direct, atol=1e-5 * np.abs(direct).max())


def test_kde_refuses_an_adapted_grid():
    spectrometer = Spectrometer("23Na", 11.7)
    axis = PPMAxis.from_range(-40, 20, 600)
    grid = lineshape_grid(spectrometer, axis.step_ppm, 3.0, "mas", SITE_TEST_GRID)
    rng = np.random.default_rng(4)
    sites = Sites("23Na", rng.normal(0, 3, 50), rng.uniform(0.5, 2, 50), rng.uniform(0, 1, 50))
    with pytest.raises(ValueError, match="uniform CQ nodes"):
        kde_node_weights(sites, grid, axis)
