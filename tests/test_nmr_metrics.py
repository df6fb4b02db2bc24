"""Observable error metrics (ase_mlnmr.nmr.metrics), Harper 2025 definitions."""
import numpy as np
import pytest

from ase_mlnmr.nmr import (
    component_mae,
    efg_errors,
    harper_observables,
    orientation_similarity,
    shielding_errors,
    species_vzz_stats,
)

from rotation_helpers import ry, rz


def axis_angle(axis, angle):
    n = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -n[2], n[1]], [n[2], 0, -n[0]], [-n[1], n[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


R0 = rz(0.3) @ ry(1.1) @ rz(-0.4)


def efg_set(scale=1.0):
    # Vzz = k = 1, 2, 3 with Vxx = -0.3k, Vyy = -0.7k (eta = 0.4), rotated by R0
    return np.array([R0 @ np.diag([-0.3 * k, -0.7 * k, k]) @ R0.T for k in (1.0, 2.0, 3.0)]) * scale


def test_harper_observables_hand_worked():
    efg = efg_set()
    stats = species_vzz_stats(efg, "Al")
    # mu(|Vzz|) = (1 + 2 + 3)/3 = 2; population sigma = sqrt((1 + 0 + 1)/3) = sqrt(2/3)
    assert stats["Al"] == pytest.approx((2.0, np.sqrt(2 / 3)))
    obs = harper_observables(efg, "Al")
    np.testing.assert_allclose(obs.cq_tilde, np.array([-1.0, 0.0, 1.0]) / np.sqrt(2 / 3), atol=1e-12)
    # eta~ = (Vxx - Vyy)/mu = 0.4k/2 = 0.2k
    np.testing.assert_allclose(obs.eta_tilde, [0.2, 0.4, 0.6])
    # sign-fixed: -V gives the same observables
    neg = harper_observables(-efg, "Al")
    np.testing.assert_allclose(neg.cq_tilde, obs.cq_tilde, atol=1e-12)
    np.testing.assert_allclose(neg.eta_tilde, obs.eta_tilde)


def test_efg_errors_hand_worked():
    ref = efg_set()
    pred = efg_set(1.1)
    err = efg_errors(ref, pred, ["Al", "Al", "Al"])["Al"]
    # C~Q(pred) with the reference statistics: (1.1k - 2)/sqrt(2/3); error 0.1k/sqrt(2/3)
    # MAE = 0.1 * mean(1, 2, 3) / sqrt(2/3) = 0.2/sqrt(2/3)
    assert err.mae_cq_tilde == pytest.approx(0.2 / np.sqrt(2 / 3))
    # eta~ error = 0.04k/2 = 0.02k -> MAE 0.04
    assert err.mae_eta_tilde == pytest.approx(0.04)
    assert err.mean_q_tilde == pytest.approx(1.0)
    assert err.n == 3 and err.n_axial == 0
    # component MAE: sum |0.1 V_ij| over 9 components = 0.1 * sum|V_ij| ... compare with a direct mean
    assert err.mae_components == pytest.approx(np.abs(0.1 * ref).mean())
    assert component_mae(ref, pred) == pytest.approx(np.abs(0.1 * ref).mean())


def test_q_tilde_known_misorientation():
    ref = efg_set()
    # rotate the predicted tensors by 40 deg about a lab axis: q~ = cos(20 deg)
    # (the flip-equivalents give |n_k| sin(20 deg) <= 0.342 < cos(20 deg) = 0.940)
    rot = axis_angle([1.0, 2.0, -0.5], np.radians(40.0))
    pred = rot @ ref @ rot.T
    sim = orientation_similarity(ref, pred)
    np.testing.assert_allclose(sim.q_tilde, np.cos(np.radians(20.0)), atol=1e-9)
    assert not sim.axial.any()
    # a 180 deg rotation about a principal axis is the same orientation: q~ = 1
    flip = axis_angle(R0[:, 1], np.pi)
    np.testing.assert_allclose(orientation_similarity(ref, flip @ ref @ flip.T).q_tilde, 1.0, atol=1e-9)


def test_q_tilde_range_random():
    rng = np.random.default_rng(0)
    n = 300
    a = rng.normal(size=(n, 3, 3))
    b = rng.normal(size=(n, 3, 3))
    sym_a = a + np.swapaxes(a, 1, 2)
    sym_b = b + np.swapaxes(b, 1, 2)
    q = orientation_similarity(sym_a, sym_b).q_tilde
    assert np.all(q >= 0.5 - 1e-12) and np.all(q <= 1.0)


def test_shielding_errors_hand_worked_and_species():
    ms = np.array([R0 @ np.diag(d) @ R0.T for d in ([20.0, 50.0, 110.0], [-30.0, 10.0, 20.0], [5.0, 5.0, 8.0])])
    pred = ms + 5.0 * np.eye(3)  # isotropic offset of 5 ppm
    err = shielding_errors(ms, pred, ["Si", "Si", "O"])
    assert set(err) == {"Si", "O"}
    si = err["Si"]
    assert si.n == 2
    assert si.mae_iso == pytest.approx(5.0)
    assert (si.mae_zeta, si.mae_eta, si.mae_span, si.mae_skew) == pytest.approx((0, 0, 0, 0), abs=1e-9)
    # 3 diagonal components off by 5 out of 9: 15/9
    assert si.mae_components == pytest.approx(15.0 / 9.0)
    all_err = shielding_errors(ms, pred)
    assert all_err["all"].n == 3


def test_bad_input():
    ref = efg_set()
    with pytest.raises(ValueError, match="shape"):
        efg_errors(ref, ref[:2])
    with pytest.raises(ValueError, match="species"):
        efg_errors(ref, ref, ["Al", "O"])
    with pytest.raises(KeyError, match="O"):
        harper_observables(ref, ["Al", "O", "O"], stats={"Al": (2.0, 1.0)})
    bad = ref.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        efg_errors(ref, bad)
    with pytest.warns(RuntimeWarning, match="std"):
        obs = harper_observables(ref[:1], "Al")
    assert np.isnan(obs.cq_tilde[0])
