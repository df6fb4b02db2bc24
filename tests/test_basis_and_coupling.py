"""Radial basis, radial-integral tables, real harmonics, Clebsch–Gordan couplings and the
Cartesian <-> spherical tensor map, each against an independent evaluation."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad

from ase_mlnmr.core._soap_core import spherical_harmonics
from ase_mlnmr.core.clebsch_gordan import complex_clebsch_gordan, real_clebsch_gordan
from ase_mlnmr.core.radial_basis import build_radial_table, radial_basis, radial_integrals
from ase_mlnmr.core.spherical_tensors import (
    L2_BASIS,
    cartesian_to_spherical,
    spherical_to_cartesian,
    symmetric_traceless_to_l2,
)

import numpy_reference as ref
from conftest import random_rotation


def test_radial_basis_is_orthonormal_with_r2_weight():
    r_cut = 4.5
    for l in range(4):
        for n1 in range(4):
            for n2 in range(n1, 4):
                value, _ = quad(lambda r: radial_basis(np.array([r]), r_cut, 4, 3)[l, n1, 0]
                                * radial_basis(np.array([r]), r_cut, 4, 3)[l, n2, 0] * r * r, 0, r_cut, limit=200)
                assert value == pytest.approx(float(n1 == n2), abs=1e-9)


def test_radial_integrals_match_adaptive_quadrature():
    r_cut, sigma = 5.0, 0.3
    distances = np.array([0.0, 0.05, 1.3, 2.9, 4.99])
    table = radial_integrals(distances, r_cut, sigma, n_max=3, l_max=3)
    for k, d in enumerate(distances):
        for l in range(4):
            for n in range(3):
                assert table[k, l, n] == pytest.approx(ref.radial_integral(d, n, l, r_cut, sigma), abs=1e-9, rel=1e-8)


def test_radial_table_interpolation_error_is_small():
    table = build_radial_table(6.0, 0.2, 8, 6)  # narrow Gaussian: argument r d / σ² reaches 900
    d = np.random.default_rng(1).uniform(0, 6.0, 300)
    exact = radial_integrals(d, 6.0, 0.2, 8, 6) * (0.5 * (np.cos(np.pi * d / 6.0) + 1))[:, None, None]
    assert np.all(np.isfinite(exact))
    np.testing.assert_allclose(table.evaluate(d), exact, atol=1e-7 * np.abs(exact).max())


def test_real_spherical_harmonics_match_scipy():
    v = np.random.default_rng(2).normal(size=(50, 3))
    v /= np.linalg.norm(v, axis=1)[:, None]
    ours = spherical_harmonics(v, 8)
    for l in range(9):
        np.testing.assert_allclose(ours[:, l * l: (l + 1) ** 2], ref.real_harmonics(v, l), atol=1e-12)


@pytest.mark.parametrize("l1,l2,lam", [(1, 1, 2), (2, 2, 2), (1, 3, 2), (3, 4, 1), (2, 4, 2), (3, 3, 1), (4, 4, 4)])
def test_clebsch_gordan_against_sympy(l1, l2, lam):
    np.testing.assert_allclose(real_clebsch_gordan(l1, l2, lam), ref.sympy_real_cg(l1, l2, lam), atol=1e-13)
    from sympy.physics.quantum.cg import CG

    for m1 in range(-l1, l1 + 1):
        m2 = min(max(-l2, 1 - m1), l2)
        assert complex_clebsch_gordan(l1, m1, l2, m2, lam, m1 + m2) == pytest.approx(
            float(CG(l1, m1, l2, m2, lam, m1 + m2).doit()) if abs(m1 + m2) <= lam else 0.0, abs=1e-13)


@pytest.mark.parametrize("l1,l2,lam", [(1, 1, 2), (2, 2, 2), (1, 3, 2), (2, 4, 2), (3, 3, 2)])
def test_coupled_harmonics_of_one_direction_give_y_lambda(l1, l2, lam):
    # Σ C^R Y_l1m1(r) Y_l2m2(r) = const · Y_λμ(r) for one direction r, with l1 + l2 + λ even
    v = np.random.default_rng(3).normal(size=(20, 3))
    v /= np.linalg.norm(v, axis=1)[:, None]
    y = spherical_harmonics(v, max(l1, l2, lam))
    coupled = np.einsum("na,nb,abm->nm", y[:, l1 * l1:(l1 + 1) ** 2], y[:, l2 * l2:(l2 + 1) ** 2],
                        real_clebsch_gordan(l1, l2, lam))
    target = y[:, lam * lam:(lam + 1) ** 2]
    ratio = np.sum(coupled * target) / np.sum(target * target)
    assert abs(ratio) > 1e-3
    np.testing.assert_allclose(coupled, ratio * target, atol=1e-12)


def test_spherical_tensor_round_trip_isometry_and_harmonic_shape():
    rng = np.random.default_rng(4)
    tensors = rng.normal(size=(10, 3, 3))
    iso, l1, l2 = cartesian_to_spherical(tensors)
    np.testing.assert_allclose(spherical_to_cartesian(iso, l1, l2), tensors, atol=1e-14)
    symmetric = 0.5 * (tensors + np.swapaxes(tensors, 1, 2)) - iso[:, None, None] * np.eye(3)
    np.testing.assert_allclose(np.sum(l2**2, axis=1), np.sum(symmetric**2, axis=(1, 2)))
    # r^T B_m r = sqrt(8π/15) Y_2m(r): the l=2 basis has the shape of the real harmonics
    v = rng.normal(size=(30, 3))
    v /= np.linalg.norm(v, axis=1)[:, None]
    np.testing.assert_allclose(np.einsum("ni,mij,nj->nm", v, L2_BASIS, v),
                               np.sqrt(8 * np.pi / 15) * spherical_harmonics(v, 2)[:, 4:9], atol=1e-13)
    rotation = random_rotation(9)
    s = symmetric_traceless_to_l2(symmetric)
    rotated = symmetric_traceless_to_l2(rotation @ symmetric @ rotation.T)
    np.testing.assert_allclose(np.linalg.norm(rotated, axis=1), np.linalg.norm(s, axis=1))
