"""EFG conventions (ase_mlnmr.nmr.efg): constants, CQ, eta, PQ, nuQ, dQIS, wQ."""
import math
from pathlib import Path

import numpy as np
import pytest

from ase_mlnmr.nmr import (
    CQ_MHZ_PER_MB_AU,
    CQ_MHZ_PER_MB_V_PER_A2,
    EFG_AU_IN_V_PER_A2,
    EFG_AU_IN_V_PER_M2,
    convert_efg,
    cq_from_vzz,
    efg_asymmetry,
    efg_principal_components,
    larmor_frequency,
    omega_q,
    quadrupolar_coupling,
    quadrupolar_frequency,
    quadrupolar_induced_shift,
    quadrupolar_parameters,
    quadrupolar_product,
)

from rotation_helpers import random_rotations, rotated, ry, rz

GEHLENITE = Path(__file__).resolve().parents[2] / "shared" / "data" / "gehlenite_efg" / "orig" / "T1Si0.magres"


def random_traceless(n, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, 3, 3))
    s = 0.5 * (a + np.swapaxes(a, 1, 2))
    return s - np.trace(s, axis1=1, axis2=2)[:, None, None] * np.eye(3) / 3


def test_unit_constants_against_quoted_numbers():
    # NMR_CONVENTIONS.md: 1 a.u. = 9.71736e21 V/m^2 = 97.1736 V/A^2
    assert EFG_AU_IN_V_PER_M2 == pytest.approx(9.71736e21, rel=2e-6)
    assert EFG_AU_IN_V_PER_A2 == pytest.approx(97.1736, rel=2e-6)
    # CQ[MHz] = 0.234965 Q[mb] Vzz[a.u.] = 2.41799e-3 Q[mb] Vzz[V/A^2]
    assert CQ_MHZ_PER_MB_AU == pytest.approx(0.234965, rel=5e-6)
    assert CQ_MHZ_PER_MB_V_PER_A2 == pytest.approx(2.41799e-3, rel=5e-6)
    # the two factors differ by the unit conversion
    assert CQ_MHZ_PER_MB_AU == pytest.approx(CQ_MHZ_PER_MB_V_PER_A2 * EFG_AU_IN_V_PER_A2, rel=1e-12)


def test_unit_round_trip():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(5, 3, 3))
    for a, b in [("au", "V/A^2"), ("au", "V/m^2"), ("V/A^2", "V/m^2"), ("V/Å²", "a.u.")]:
        np.testing.assert_allclose(convert_efg(convert_efg(v, a, b), b, a), v, rtol=1e-14)
    assert convert_efg(1.0, "au", "V/A^2") == pytest.approx(97.1736, rel=2e-6)
    assert convert_efg(1.0, "V/A^2", "V/m^2") == 1e20
    with pytest.raises(ValueError, match="unit"):
        convert_efg(1.0, "au", "kV/cm")


def test_cq_27al_one_au():
    v = np.diag([-0.5, -0.5, 1.0])  # Vzz = 1 a.u.
    # 0.234965 MHz/(mb a.u.) * 146.6 mb = 34.44587 MHz
    assert quadrupolar_coupling(v, "Al") == pytest.approx(0.234965 * 146.6, rel=5e-6)
    assert quadrupolar_coupling(v, "27Al") == pytest.approx(0.234965 * 146.6, rel=5e-6)
    # same tensor in V/A^2 gives the same CQ: 2.41799e-3 * 146.6 * 97.1736
    v_si = v * 97.1736
    assert quadrupolar_coupling(v_si, "Al", units="V/A^2") == pytest.approx(2.41799e-3 * 146.6 * 97.1736, rel=5e-6)
    # sign follows Q*Vzz: 17O has Q < 0
    assert quadrupolar_coupling(v, "O") == pytest.approx(0.234965 * -25.58, rel=5e-6)
    assert quadrupolar_coupling(-v, "O") == pytest.approx(0.234965 * 25.58, rel=5e-6)
    # explicit isotope override
    assert quadrupolar_coupling(v, "Li", isotopes={"Li": "6Li"}) == pytest.approx(0.234965 * -0.808, rel=5e-6)
    assert cq_from_vzz(2.0, "23Na") == pytest.approx(0.234965 * 104 * 2.0, rel=5e-6)


def test_hand_worked_principal_values_and_derived():
    v = rotated([-0.3, -0.7, 1.0], 25, 65, 145)
    p = efg_principal_components(v)
    # |Vzz| = 1 >= |Vyy| = 0.7 >= |Vxx| = 0.3; eta = (-0.3 - (-0.7))/1 = 0.4
    assert (p.vxx, p.vyy, p.vzz, p.eta) == pytest.approx((-0.3, -0.7, 1.0, 0.4))
    assert np.linalg.det(p.vectors) == pytest.approx(1.0)
    np.testing.assert_allclose(p.vectors @ np.diag([-0.3, -0.7, 1.0]) @ p.vectors.T, v, atol=1e-12)
    cq = 0.234965 * 146.6  # 27Al, Vzz = 1 a.u.
    # PQ = CQ sqrt(1 + 0.4^2/3) = CQ sqrt(1.053333...)
    assert quadrupolar_product(cq, 0.4) == pytest.approx(cq * math.sqrt(1 + 0.16 / 3))
    # nuQ = 3 CQ / (2 I (2I - 1)) with I = 5/2: 3 CQ / 20
    assert quadrupolar_frequency(cq, 2.5) == pytest.approx(3 * cq / 20)
    assert quadrupolar_frequency(cq, "27Al") == pytest.approx(3 * cq / 20)
    params = quadrupolar_parameters(v, "Al")
    assert params.cq == pytest.approx(cq, rel=5e-6)
    assert params.pq == pytest.approx(cq * math.sqrt(1 + 0.16 / 3), rel=5e-6)
    assert params.nu_q == pytest.approx(3 * cq / 20, rel=5e-6)
    # negative Vzz: diag(0.4, 0.6, -1): Vyy = 0.6, Vxx = 0.4, eta = (0.4 - 0.6)/(-1) = 0.2
    p = efg_principal_components(rotated([0.6, 0.4, -1.0], 10, 100, 20))
    assert (p.vxx, p.vyy, p.vzz, p.eta) == pytest.approx((0.4, 0.6, -1.0, 0.2))
    # eta = 1 and the zero tensor
    assert efg_asymmetry(np.diag([0.0, -1.0, 1.0])) == pytest.approx(1.0)
    assert efg_asymmetry(np.zeros((3, 3))) == 0.0
    assert quadrupolar_coupling(np.zeros((3, 3)), "Al") == 0.0


def test_trace_and_antisymmetric_part_removed():
    v = rotated([-0.3, -0.7, 1.0], 25, 65, 145)
    a = np.array([[0, 0.2, -0.1], [-0.2, 0, 0.3], [0.1, -0.3, 0]])
    p = efg_principal_components(v + a + 0.01 * np.eye(3))
    assert (p.vxx, p.vyy, p.vzz) == pytest.approx((-0.3, -0.7, 1.0))


def test_quadrupolar_induced_shift():
    b0 = 14.1
    nu0_al = 11.1031 * b0  # |gamma/2pi| B0 for 27Al (NMR_CONVENTIONS.md value)
    assert larmor_frequency("27Al", b0) == pytest.approx(nu0_al, rel=1e-6)
    pq = 5.0
    # I = 5/2: -6000 (PQ/nu0)^2 ppm
    assert quadrupolar_induced_shift(pq, "Al", b0) == pytest.approx(-6000 * (pq / nu0_al) ** 2)
    # I = 3/2 (23Na): -25000 (PQ/nu0)^2
    nu0_na = 11.2688 * b0
    assert quadrupolar_induced_shift(pq, "Na", b0) == pytest.approx(-25000 * (pq / nu0_na) ** 2, rel=1e-5)
    # I = 7/2 (43Ca): 3/40 * [63/4 - 3/4] / [49/4 * 36] = 3/40 * 15/441 -> -2551.0204 (PQ/nu0)^2
    nu0_ca = 2.86967 * b0
    assert quadrupolar_induced_shift(pq, "Ca", b0) == pytest.approx(
        -(3 / 40) * (15 / 441) * 1e6 * (pq / nu0_ca) ** 2, rel=1e-5
    )
    # Xi-based Larmor frequency: Xi/100 * gamma_1H B0
    assert larmor_frequency("27Al", b0, use_xi=True) == pytest.approx(0.26056859 * 42.5775 * b0, rel=1e-6)
    assert larmor_frequency("29Si", b0) == pytest.approx(8.4655 * b0, rel=1e-6)
    with pytest.raises(ValueError, match="B0"):
        larmor_frequency("27Al", -1.0)


def test_omega_q_special_orientations_and_random_directions():
    vxx, vyy, vzz = -0.3, -0.7, 1.0
    eta = (vxx - vyy) / vzz
    cq = 3.0
    nu_q = 3 * cq / (2 * 2.5 * 4)  # I = 5/2
    # theta = 90 deg, phi = 0: field along x -> nuQ Vxx/Vzz
    assert omega_q(cq, eta, 2.5, np.pi / 2, 0.0) == pytest.approx(nu_q * vxx / vzz)
    # theta = 90 deg, phi = 90 deg: along y -> nuQ Vyy/Vzz
    assert omega_q(cq, eta, 2.5, np.pi / 2, np.pi / 2) == pytest.approx(nu_q * vyy / vzz)
    # theta = 0: along z -> nuQ
    assert omega_q(cq, eta, 2.5, 0.0, 1.234) == pytest.approx(nu_q)
    rng = np.random.default_rng(5)
    theta = np.arccos(rng.uniform(-1, 1, 100))
    phi = rng.uniform(0, 2 * np.pi, 100)
    b = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], 1)
    v_bb = np.einsum("ni,ij,nj->n", b, np.diag([vxx, vyy, vzz]), b)
    np.testing.assert_allclose(omega_q(cq, eta, 2.5, theta, phi), nu_q * v_bb / vzz, atol=1e-12)


def test_rotation_invariance_and_ranges():
    n = 300
    v = random_traceless(n, 1)
    rots = random_rotations(n, 2)
    vr = rots @ v @ np.swapaxes(rots, 1, 2)
    species = ["Al", "O", "Na"] * (n // 3)
    a = quadrupolar_parameters(v, species)
    b = quadrupolar_parameters(vr, species)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-12)
    p = efg_principal_components(v)
    assert np.all((p.eta >= 0) & (p.eta <= 1))
    assert np.all(np.abs(p.vzz) >= np.abs(p.vyy)) and np.all(np.abs(p.vyy) >= np.abs(p.vxx))
    np.testing.assert_allclose(p.vxx + p.vyy + p.vzz, 0.0, atol=1e-12)
    # PQ does not depend on the eigenvalue order: sum_i V_ii^2 = Vzz^2 (3/2)(1 + eta^2/3),
    # so |PQ| = (e Q / h) sqrt((2/3) sum_i V_ii^2)
    q_al = 0.234965 * 146.6
    pq_direct = q_al * np.sqrt((2 / 3) * (p.vxx**2 + p.vyy**2 + p.vzz**2))
    al = np.array(species) == "Al"
    np.testing.assert_allclose(np.abs(a.pq[al]), pq_direct[al], rtol=5e-6)


def test_bad_input():
    with pytest.raises(ValueError, match="shape"):
        efg_principal_components(np.zeros((3, 4)))
    bad = np.zeros((2, 3, 3))
    bad[0, 1, 1] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        quadrupolar_coupling(bad, "Al")
    with pytest.raises(KeyError, match="Si"):
        quadrupolar_coupling(np.eye(3), "Si")
    with pytest.raises(KeyError, match="42Al"):
        quadrupolar_coupling(np.eye(3), "42Al")
    with pytest.raises(ValueError, match="species"):
        quadrupolar_coupling(np.zeros((3, 3, 3)), ["Al", "O"])
    with pytest.raises(ValueError, match="eta"):
        quadrupolar_product(1.0, 1.5)
    with pytest.raises(ValueError, match="spin"):
        quadrupolar_frequency(1.0, 0.5)
    cq = quadrupolar_coupling(np.array([np.diag([-0.5, -0.5, 1.0])] * 2), ["Al", "Si"], missing="nan")
    assert cq[0] == pytest.approx(0.234965 * 146.6, rel=5e-6) and np.isnan(cq[1])


def test_against_soprano_gehlenite():
    if not GEHLENITE.exists():
        pytest.skip(f"shared data folder absent ({GEHLENITE})")
    efg_props = pytest.importorskip("soprano.properties.nmr.efg")
    import ase.io

    atoms = ase.io.read(str(GEHLENITE))
    assert atoms.info["magres_units"]["efg"] == "au"
    symbols = np.array(atoms.get_chemical_symbols())
    keep = symbols != "Si"  # Soprano gives CQ = 0 for Q = 0; we raise instead
    cq_sop = efg_props.EFGQuadrupolarConstant.get(atoms.copy(), isotopes={"Al": 27, "O": 17, "Ca": 43}) / 1e6
    eta_sop = efg_props.EFGAsymmetry.get(atoms.copy())
    efg = atoms.get_array("efg")
    params = quadrupolar_parameters(efg[keep], symbols[keep])
    # Soprano uses scipy's "atomic unit of electric field gradient" and the same Q table
    np.testing.assert_allclose(params.cq, cq_sop[keep], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(params.eta, eta_sop[keep], atol=1e-6)
