"""Sheared 3QMAS 2D spectra (AF axis) and sites read from structures with tensors."""
from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from spectra_helpers import TEST_GRID, l1_half

from ase_mlnmr.spectra import PPMAxis, Sites, Spectrometer, simulate_spectrum
from ase_mlnmr.spectra.grid import site_node_weights
from ase_mlnmr.spectra.io import sites_from_structures
from ase_mlnmr.spectra.mqmas import mqmas_2d_grid, mqmas_2d_per_site
from ase_mlnmr.spectra.simulate import lineshape_grid


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("ASE_MLNMR_CACHE", str(tmp_path_factory.getbasetemp() / "spectra_cache"))


def _af_position(delta, cq, eta, spin, gamma, xi, b0):
    """δF1 = δiso − (10/17)δQIS written out from NMR_CONVENTIONS.md (ν_ref ppm axis)."""
    nu0 = abs(gamma) * b0
    nu_ref = xi / 100 * b0 / 0.02348731439404777
    pq = cq * np.sqrt(1 + eta**2 / 3)
    qis = -(3 / 40) * (pq / nu0) ** 2 * (spin * (spin + 1) - 0.75) / (spin**2 * (2 * spin - 1) ** 2) * 1e6
    return delta - 10 / 17 * qis * nu0 / nu_ref


@pytest.mark.parametrize("route", ["sites", "grid"])
def test_3qmas_2d_positions_and_mas_dimension(route):
    spectrometer = Spectrometer("17O", 11.7)
    sites = Sites("17O", [40.0, 60.0], [4.0, 5.2], [0.2, 0.6])
    axis = PPMAxis.from_range(-20.0, 110.0, 1301)
    if route == "sites":
        z = mqmas_2d_per_site(sites, spectrometer, axis, axis)
    else:
        grid = lineshape_grid(spectrometer, axis.step_ppm, 6.0, "mas", TEST_GRID)
        z = mqmas_2d_grid(site_node_weights(sites, grid, axis, align_centres=False), grid, axis, axis)
    f1 = z.sum(axis=1)
    expected = [_af_position(d, c, e, 2.5, -5.7742, 13.556457, 11.7) for d, c, e in
                zip(sites.delta_iso_ppm, sites.cq_MHz, sites.eta_q)]
    for lo, hi, want in ((30, 55, expected[0]), (55, 100, expected[1])):
        mask = (axis.ppm > lo) & (axis.ppm < hi)
        position = float((axis.ppm[mask] * f1[mask]).sum() / f1[mask].sum())
        assert abs(position - want) <= 0.05
    mas = simulate_spectrum(sites, spectrometer, axis, "mas", route="sites").intensity
    assert l1_half(z.sum(axis=0), mas, axis.step_ppm) <= 0.02


def test_sites_from_structures_with_tensors():
    atoms = Atoms("NaSiNa", positions=[[0, 0, 0], [2, 0, 0], [0, 2, 0]], cell=[6, 6, 6], pbc=True)
    vzz, eta = 0.1, 0.4  # a.u.
    efg = np.diag([-(1 - eta) / 2 * vzz, -(1 + eta) / 2 * vzz, vzz])  # Vxx, Vyy, Vzz, traceless
    ms = np.diag([540.0, 560.0, 600.0])
    atoms.arrays["efg"] = np.array([efg, np.zeros((3, 3)), efg]).reshape(3, 9)
    atoms.arrays["ms"] = np.array([ms, ms, ms + 5 * np.eye(3)]).reshape(3, 9)
    sites = sites_from_structures([atoms], "23Na", sigma_ref=560.0, slope=0.9)
    assert len(sites) == 2
    # CQ = eQVzz/h: 0.234965 MHz per (mb · a.u.), Q(23Na) = 104 mb (Pyykkö 2018)
    assert np.allclose(sites.cq_MHz, 0.234965 * 104 * vzz, rtol=1e-5)
    assert np.allclose(sites.eta_q, eta)
    sigma_iso = np.array([ms.trace() / 3, ms.trace() / 3 + 5])
    assert np.allclose(sites.delta_iso_ppm, -0.9 * (sigma_iso - 560.0))
    # Haeberlen: zeta_sigma = 600 - 566.67 = 33.33 ppm; zeta_delta = -a zeta_sigma; eta = (540-560)/... -> 0.6
    assert np.allclose(sites.csa_zeta_ppm, -0.9 * (600.0 - 1700.0 / 3))
    assert np.allclose(sites.csa_eta, (560.0 - 540.0) / (600.0 - 1700.0 / 3))
    with pytest.raises(ValueError, match="sigma_ref"):
        sites_from_structures([atoms], "23Na")


def test_structure_euler_angles_rebuild_the_csa_in_the_efg_frame():
    from scipy.spatial.transform import Rotation

    from ase_mlnmr.nmr import rotation_from_euler

    rot_efg = Rotation.from_euler("xyz", [0.3, -0.8, 1.9]).as_matrix()
    rot_ms = Rotation.from_euler("xyz", [1.1, 0.4, -0.6]).as_matrix()
    efg = rot_efg @ np.diag([-0.02, -0.06, 0.08]) @ rot_efg.T      # |Vxx| <= |Vyy| <= |Vzz|
    ms = rot_ms @ np.diag([520.0, 545.0, 610.0]) @ rot_ms.T
    atoms = Atoms("Na", positions=[[0, 0, 0]], cell=[5, 5, 5], pbc=True)
    atoms.arrays["efg"] = efg.reshape(1, 9)
    atoms.arrays["ms"] = ms.reshape(1, 9)
    site = sites_from_structures([atoms], "23Na", sigma_ref=560.0)[0]
    # the shift tensor in the EFG frame from the site's parameters ...
    r = rotation_from_euler(*site.euler_angles)
    zeta, eta = site.csa_zeta_ppm, site.csa_eta
    rebuilt = r @ np.diag([-zeta * (1 + eta) / 2, -zeta * (1 - eta) / 2, zeta]) @ r.T
    # ... equals −(σ − σiso) written in the EFG principal frame (columns x, y, z of |V| order),
    # up to the 180° turns about the EFG axes that leave the EFG unchanged
    expected = -(rot_efg.T @ (ms - np.trace(ms) / 3 * np.eye(3)) @ rot_efg)
    turns = [np.diag(d) for d in ([1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1])]
    assert any(np.allclose(rebuilt, t @ expected @ t, atol=1e-8) for t in turns)
    assert not np.allclose(rebuilt, -expected, atol=1e-3)
