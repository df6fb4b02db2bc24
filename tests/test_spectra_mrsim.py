"""Static CT lineshapes and exported spin systems simulated by mrsimulator 1.0.0 in the test."""
from __future__ import annotations

import json

import numpy as np
import pytest

from spectra_helpers import l1_half

from ase_mlnmr.spectra import PPMAxis, Sites, Spectrometer, simulate_spectrum
from ase_mlnmr.spectra.mrsim import write_mrsimulator_json

mrsimulator = pytest.importorskip("mrsimulator")
from mrsimulator import Simulator, SpinSystem  # noqa: E402
from mrsimulator.method.lib import BlochDecayCTSpectrum  # noqa: E402


def _run(path, isotope, b0, count, width_hz, offset_hz, rotor, density=128):
    data = json.loads(path.read_text())
    systems = [SpinSystem.parse_dict_with_units(d) for d in data["spin_systems"]]
    method = BlochDecayCTSpectrum(channels=[isotope], magnetic_flux_density=b0, rotor_frequency=rotor,
                                  spectral_dimensions=[dict(count=count, spectral_width=width_hz,
                                                            reference_offset=offset_hz)])
    sim = Simulator(spin_systems=systems, methods=[method])
    sim.config.integration_density = density
    sim.config.integration_volume = "hemisphere"
    sim.run()
    return np.asarray(sim.methods[0].simulation.y[0].components[0].real, dtype=float)


@pytest.mark.parametrize("isotope, cq, eta, b0", [("23Na", 2.1, 0.4, 9.4), ("27Al", 5.5, 0.7, 14.1)])
def test_static_ct_matches_mrsimulator(tmp_path, isotope, cq, eta, b0):
    sites = Sites(isotope, [4.0], [cq], [eta])
    spectrometer = Spectrometer(isotope, b0)
    count, width, offset = 2048, 40000.0, -4000.0
    axis = PPMAxis.from_spectrometer(count, width, offset, spectrometer.nu_ref_Hz)
    path = write_mrsimulator_json(sites, tmp_path / "sites.json")
    reference = _run(path, isotope, b0, count, width, offset, 0.0)
    ours = simulate_spectrum(sites, spectrometer, axis, "static", route="sites").intensity
    assert l1_half(ours, reference, axis.step_ppm) <= 0.02


def test_exported_ensemble_matches_mrsimulator_mas(tmp_path):
    rng = np.random.default_rng(2)
    n = 40
    sites = Sites("23Na", rng.normal(0, 3, n), rng.uniform(0.8, 3.0, n) * rng.choice([-1, 1], n),
                  rng.uniform(0, 1, n), weight=rng.uniform(0.5, 1.0, n))
    spectrometer = Spectrometer("23Na", 11.7)
    count, width, offset = 2048, 12000.0, -2500.0
    axis = PPMAxis.from_spectrometer(count, width, offset, spectrometer.nu_ref_Hz)
    path = write_mrsimulator_json(sites, tmp_path / "sites.json")
    reference = _run(path, "23Na", 11.7, count, width, offset, np.inf)
    ours = simulate_spectrum(sites, spectrometer, axis, "mas", route="sites").intensity
    assert l1_half(ours, reference, axis.step_ppm) <= 0.02


@pytest.mark.parametrize("zeta, eta, rate", [(50.0, 0.6, 1000.0), (-70.0, 0.2, 1500.0)])
def test_spin_half_spinning_sidebands_match_mrsimulator(tmp_path, zeta, eta, rate):
    from mrsimulator.method.lib import BlochDecaySpectrum

    from ase_mlnmr.spectra import broaden

    sites = Sites("29Si", [-90.0], csa_zeta_ppm=[zeta], csa_eta=[eta])
    spectrometer = Spectrometer("29Si", 9.4)
    count, width, offset = 4096, 20000.0, -7000.0
    axis = PPMAxis.from_spectrometer(count, width, offset, spectrometer.nu_ref_Hz)
    data = json.loads(write_mrsimulator_json(sites, tmp_path / "si.json").read_text())
    method = BlochDecaySpectrum(channels=["29Si"], magnetic_flux_density=9.4, rotor_frequency=rate,
                                spectral_dimensions=[dict(count=count, spectral_width=width, reference_offset=offset)])
    sim = Simulator(spin_systems=[SpinSystem.parse_dict_with_units(d) for d in data["spin_systems"]], methods=[method])
    sim.run()
    reference = np.asarray(sim.methods[0].simulation.y[0].components[0].real, dtype=float)
    ours = simulate_spectrum(sites, spectrometer, axis, "mas", spinning_rate_Hz=rate).intensity
    # both are sticks on the same axis: compare after the same Gaussian broadening (0.3 ppm FWHM)
    assert l1_half(broaden(ours, axis, 0.3, "gaussian"), broaden(reference, axis, 0.3, "gaussian"),
                   axis.step_ppm) <= 0.02


def test_static_ct_with_csa_and_orientation_matches_mrsimulator(tmp_path):
    sites = Sites("23Na", [4.0], [2.1], [0.4], csa_zeta_ppm=[60.0], csa_eta=[0.5], euler_angles=[[0.4, 0.9, 1.3]])
    spectrometer = Spectrometer("23Na", 9.4)
    count, width, offset = 2048, 40000.0, -4000.0
    axis = PPMAxis.from_spectrometer(count, width, offset, spectrometer.nu_ref_Hz)
    path = write_mrsimulator_json(sites, tmp_path / "sites.json")
    reference = _run(path, "23Na", 9.4, count, width, offset, 0.0)
    ours = simulate_spectrum(sites, spectrometer, axis, "static", route="sites").intensity
    assert l1_half(ours, reference, axis.step_ppm) <= 0.02
    # the relative orientation matters: the same site with other angles differs clearly
    other = simulate_spectrum(Sites("23Na", [4.0], [2.1], [0.4], csa_zeta_ppm=[60.0], csa_eta=[0.5]), spectrometer,
                              axis, "static", route="sites").intensity
    assert l1_half(other, reference, axis.step_ppm) > 0.1
