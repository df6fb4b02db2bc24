"""1D spectra against the mrsimulator reference lineshapes in ../shared/reference/lineshapes
(L1 = Σ|Δ|·step/2 of area-normalised spectra, half the L1 printed in cases.json)."""
from __future__ import annotations

import numpy as np
import pytest

from spectra_helpers import TEST_GRID, l1_half, load_case

from ase_mlnmr.spectra import PPMAxis, Sites, simulate_spectrum
from ase_mlnmr.spectra.central_transition import ct_prefactor_ppm
from ase_mlnmr.spectra.simulate import GridSettings, lineshape_grid


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("ASE_MLNMR_CACHE", str(tmp_path_factory.getbasetemp() / "spectra_cache"))


@pytest.mark.parametrize("case_id, route", [
    ("dev1_na23_mas_ct", "sites"), ("dev1_na23_mas_ct", "grid"),
    ("dev2_al27_mas_ct", "sites"), ("dev2_al27_mas_ct", "grid"),
    ("dev5_na23_ensemble_mas_ct", "sites"), ("dev5_na23_ensemble_mas_ct", "grid"),
    ("dev3_si29_static_csa", "sites"),
])
def test_reference_lineshapes_within_2_percent(case_id, route):
    case, spectrometer, axis, reference, sites = load_case(case_id)
    assert np.allclose(axis.ppm, reference[:, 0], atol=1e-7)  # same ppm axis as the reference
    experiment = "static" if case["csa"] else "mas"
    spectrum = simulate_spectrum(sites, spectrometer, axis, experiment, route=route, grid_settings=TEST_GRID)
    assert l1_half(spectrum.intensity, reference[:, 1], axis.step_ppm) <= 0.02


@pytest.mark.parametrize("route", ["sites", "grid"])
def test_3qmas_isotropic_position_on_af_axis(route):
    case, spectrometer, _, _, sites = load_case("dev4_o17_3qmas_iso")
    from spectra_helpers import lineshape_dir

    af = np.loadtxt(lineshape_dir() / case["aux_file_AF_axis"]["file"], delimiter=",", skiprows=1)
    reference_position = float((af[:, 0] * af[:, 1]).sum() / af[:, 1].sum())
    axis = PPMAxis.from_range(30.0, 70.0, 2001)
    spectrum = simulate_spectrum(sites, spectrometer, axis, "3qmas-iso", route=route, grid_settings=TEST_GRID)
    position = float((spectrum.ppm * spectrum.intensity).sum() / spectrum.intensity.sum())
    assert abs(position - reference_position) <= 0.05
    assert abs(position - case["peak_position_AF_ppm_expected"]) <= 0.05


def test_grid_off_node_matches_per_site():
    """CQ 2.37 MHz, η 0.33 lies between grid nodes (steps 0.05 MHz, 0.05)."""
    _, spectrometer, axis, _, _ = load_case("dev5_na23_ensemble_mas_ct")
    sites = Sites("23Na", [1.3], [2.37], [0.33])
    assert not np.isclose(2.37 / TEST_GRID.cq_step_MHz % 1, 0) and not np.isclose(0.33 / TEST_GRID.eta_step % 1, 0)
    exact = simulate_spectrum(sites, spectrometer, axis, "mas", route="sites")
    grid = simulate_spectrum(sites, spectrometer, axis, "mas", route="grid", grid_settings=TEST_GRID)
    assert l1_half(grid.intensity, exact.intensity, axis.step_ppm) <= 0.02


def test_static_grid_matches_per_site_off_node():
    _, spectrometer, _, _, _ = load_case("dev5_na23_ensemble_mas_ct")
    axis = PPMAxis.from_range(-120, 60, 3000)
    sites = Sites("23Na", [1.3], [2.37], [0.33])
    fine = GridSettings(0.025, 0.025, TEST_GRID.n_alpha, TEST_GRID.n_y)  # static lines are sharper
    exact = simulate_spectrum(sites, spectrometer, axis, "static", route="sites")
    grid = simulate_spectrum(sites, spectrometer, axis, "static", route="grid", grid_settings=fine)
    assert l1_half(grid.intensity, exact.intensity, axis.step_ppm) <= 0.02
    # the grid holds every node's line: the prefactor P of the largest node fits the offsets
    g = lineshape_grid(spectrometer, axis.step_ppm, 2.37, "static", TEST_GRID)
    assert g.offset_low * axis.step_ppm <= 1.2 * ct_prefactor_ppm(g.cq_nodes[-1], spectrometer)


@pytest.mark.parametrize("case_id", ["dev1_na23_mas_ct", "dev2_al27_mas_ct", "dev3_si29_static_csa",
                                     "dev4_o17_3qmas_iso", "dev5_na23_ensemble_mas_ct"])
def test_reference_and_larmor_frequencies(case_id):
    case, spectrometer, _, _, _ = load_case(case_id)
    assert spectrometer.nu_ref_Hz == pytest.approx(case["nu_ref_Hz"], rel=1e-9)
    # bare-gamma Larmor frequency; the isotope tables differ in the 6th digit at most
    assert spectrometer.nu0_Hz == pytest.approx(case["nu0_Hz"], rel=1e-5)
