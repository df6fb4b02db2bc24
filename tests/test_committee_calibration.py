"""Power-law committee calibration u(s) = sqrt(a² s^(2b) + c²) (committee.calibration "power").

References are independent: an explicit NumPy likelihood minimised by Nelder-Mead, data drawn
from known (a, b, c), a NumPy grouped-CV refit of the full model on fixed inducing points,
and the formula of the calibrated spread written out per component.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.stats import ortho_group

from ase_mlnmr.models.committee import (CommitteeSettings, calibration_folds, calibration_from_params,
                                        calibration_params, committee_design, member_spread, out_of_sample_spread,
                                        power_calibration)
from ase_mlnmr.models.linear import EquivariantRidge
from ase_mlnmr.models.nystrom import NystromKernelRidge
from ase_mlnmr.nmr.efg import CQ_MHZ_PER_MB_AU
from ase_mlnmr.nmr.isotopes import quadrupolar_isotope
from ase_mlnmr.nmr_model import NMRModel
from ase_mlnmr.core.spherical_tensors import l2_to_symmetric_traceless
from ase_mlnmr.training.config import ConfigError, validate_config

from synthetic_data import synthetic_dataset
from test_committee import _regression_data
from test_committee_evaluator import _efg_reference


def _draw(a, b, c, n=20000, d=1, seed=0, zero_fraction=0.0):
    rng = np.random.default_rng(seed)
    s = np.exp(rng.normal(0.0, 0.8, n)) * 2.0  # spreads, ppm
    s[rng.random(n) < zero_fraction] = 0.0
    u = np.sqrt(a**2 * s ** (2 * b) + c**2)
    return rng.normal(size=(n, d)) * u[:, None], s


def _numpy_ml(residuals, s):
    """Independent maximum likelihood: parameters (a, b, c) directly, Nelder-Mead."""
    d = residuals.shape[1]
    r2 = np.sum(residuals**2, axis=1)

    def nll(theta):
        a, b, c = np.abs(theta)
        u2 = a**2 * s ** (2 * b) + c**2
        return np.sum(d / 2 * np.log(u2) + r2 / (2 * u2))

    return np.abs(minimize(nll, [1.0, 1.0, 0.5], method="Nelder-Mead",
                           options={"xatol": 1e-8, "fatol": 1e-8, "maxiter": 20000}).x)


@pytest.mark.parametrize("a, b, c, d", [(1.5, 0.5, 1.0, 1), (0.7, 1.3, 0.05, 5), (2.0, 1.0, 0.8, 1)])
def test_power_calibration_recovers_known_parameters_and_the_numpy_fit(a, b, c, d):
    residuals, s = _draw(a, b, c, d=d, seed=int(10 * a))
    fitted = power_calibration(residuals, s)
    np.testing.assert_allclose(fitted, (a, b, c), rtol=0.1, atol=0.02)
    np.testing.assert_allclose(fitted, _numpy_ml(residuals, s), rtol=2e-3, atol=2e-4)


def test_uninformative_spread_gives_a_constant_sigma():
    """Residuals independent of the spread: b → 0 and u → the RMS residual (a fit that
    insisted on u ∝ s would fail here)."""
    rng = np.random.default_rng(3)
    s = np.exp(rng.normal(0.0, 1.0, 20000))
    residuals = rng.normal(0.0, 1.7, (20000, 1))
    a, b, c = power_calibration(residuals, s)
    assert b < 0.05
    u = np.sqrt(a**2 * s ** (2 * b) + c**2)
    np.testing.assert_allclose(u, 1.7, rtol=0.05)


def test_floor_makes_atoms_whose_members_agree_finite():
    residuals, s = _draw(1.0, 1.0, 0.2, seed=4, zero_fraction=0.2)
    a, b, c = power_calibration(residuals, s)
    assert c == pytest.approx(0.2, rel=0.1)
    u = member_spread(np.zeros((8, 3)), a, b, c)
    np.testing.assert_allclose(u, c)


def test_member_spread_formula_and_rotation_invariance():
    rng = np.random.default_rng(5)
    members = rng.normal(size=(8, 30, 5)) * rng.uniform(0.1, 3.0, (1, 30, 1))
    a, b, c = 1.3, 0.6, 0.1
    std = np.std(members, axis=0, ddof=1)
    s = np.sqrt(np.mean(std**2, axis=1))
    expected = np.sqrt((a * s[:, None] ** (b - 1) * std) ** 2 + c**2)
    np.testing.assert_allclose(member_spread(members, a, b, c), expected, rtol=1e-12)
    np.testing.assert_allclose(member_spread(members, 2.0), 2.0 * std, rtol=1e-15)  # "scale"
    # the per-atom mean square a² s^2b + c² is rotation invariant (orthogonal mixing of μ)
    turned = members @ ortho_group.rvs(5, random_state=6).T
    np.testing.assert_allclose(np.mean(member_spread(turned, a, b, c) ** 2, axis=1),
                               np.mean(expected**2, axis=1), rtol=1e-10)
    np.testing.assert_allclose(np.mean(expected**2, axis=1), a**2 * s ** (2 * b) + c**2, rtol=1e-12)


def test_out_of_sample_spread_uses_only_members_that_did_not_see_the_row():
    rng = np.random.default_rng(7)
    predictions = rng.normal(size=(8, 12, 5))
    seen = rng.random((8, 12)) < 0.4
    seen[:, 0] = [True] * 7 + [False]  # one member only: no spread
    spread = out_of_sample_spread(predictions, seen)
    assert np.isnan(spread[0])
    for i in range(1, 12):
        values = predictions[~seen[:, i], i]
        if len(values) >= 2:
            assert spread[i] == pytest.approx(np.sqrt(np.var(values, axis=0, ddof=1).mean()), rel=1e-12)


def test_calibration_folds_never_split_a_group():
    groups = np.repeat(np.arange(30), 3)
    rows = committee_design(groups, CommitteeSettings(size=8, fraction=0.5))
    folds = calibration_folds(rows)
    assert all(np.unique(folds[groups == g]).size == 1 for g in range(30))
    assert np.unique(folds).size == 5


def test_nystrom_power_calibration_uses_the_full_models_out_of_sample_residuals():
    """σ_const = RMS of a NumPy grouped-CV refit (same inducing points and ridge) of the full
    model; (a, b, c) = the independent ML fit on those residuals and the out-of-sample spreads."""
    X, y, groups = _regression_data(n_groups=40, per_group=4)
    rows = committee_design(groups, CommitteeSettings(size=8, fraction=0.5, seed=1))
    model = NystromKernelRidge(n_inducing=30, length_scale=2.0, ridge=1e-3).fit(X, y, member_rows=rows,
                                                                               calibration="power")
    Xt, Z = model.transform(X), model.inducing_points_
    kernel = lambda p, q: np.exp(-((p[:, None, :] - q[None, :, :]) ** 2).sum(-1) / (2 * 2.0**2))  # noqa: E731
    K_xz, K_zz = kernel(Xt, Z), kernel(Z, Z)
    ys = (y - y.mean()) / y.std()

    def fit_predict(r):
        return K_xz @ np.linalg.solve(K_xz[r].T @ K_xz[r] + 1e-3 * K_zz, K_xz[r].T @ ys[r]) * y.std() + y.mean()

    folds = calibration_folds(rows)
    residuals = np.empty_like(y)
    for f in np.unique(folds):
        residuals[folds == f] = (y - fit_predict(folds != f))[folds == f]
    assert model.calibration_constant_sigma_ == pytest.approx(np.sqrt(np.mean(residuals**2)), rel=1e-6)
    members = np.array([fit_predict(r) for r in rows])
    expected = _numpy_ml(residuals[:, None], out_of_sample_spread(members, rows))
    np.testing.assert_allclose((model.calibration_, model.calibration_power_, model.calibration_floor_),
                               expected, rtol=2e-3, atol=1e-5)


def test_power_calibration_survives_the_model_file_and_old_parameters_still_load():
    X, y, groups = _regression_data(n_groups=40, per_group=4)
    rows = committee_design(groups, CommitteeSettings(size=8, fraction=0.5))
    model = NystromKernelRidge(n_inducing=20, length_scale=2.0, ridge=1e-3).fit(X, y, member_rows=rows,
                                                                               calibration="power")
    arrays, params = model.to_arrays()
    assert "committee_calibration" not in params  # an older reader refuses the file instead of misapplying it
    loaded = NystromKernelRidge.from_arrays(arrays, params)
    np.testing.assert_array_equal(loaded.predict_std(X), model.predict_std(X))
    assert calibration_from_params({"committee_calibration": 2.5}) == (2.5, 1.0, 0.0)
    assert calibration_params(2.5, 1.0, 0.0) == {"committee_calibration": 2.5}
    for bad in ({"scale": -1.0, "power": 1.0, "floor": 0.0}, {"scale": 1.0, "power": 3.0, "floor": 0.0},
                {"scale": 1.0, "power": 1.0, "floor": float("nan")}):
        with pytest.raises(ValueError, match="committee calibration"):
            calibration_from_params({"committee_calibration_power_law": bad})


def test_equivariant_power_calibration_round_trip():
    rng = np.random.default_rng(2)
    n, p = 60, 7
    X = rng.normal(size=(n, 5, p))
    y = np.einsum("nmp,p->nm", X, rng.normal(size=p)) + 0.1 * rng.normal(size=(n, 5))
    rows = committee_design(np.repeat(np.arange(20), 3), CommitteeSettings(size=8, fraction=0.5))
    model = EquivariantRidge(alpha=1e-2).fit(X, y).fit_members(X, y, rows, calibration="power")
    assert model.calibration_constant_sigma_ > 0
    arrays, params = model.to_arrays()
    np.testing.assert_array_equal(EquivariantRidge.from_arrays(arrays, params).predict_std(X), model.predict_std(X))


def test_config_rejects_an_unknown_calibration():
    assert validate_config({"committee": {"calibration": "power"}})["committee"]["calibration"] == "power"
    with pytest.raises(ConfigError, match="committee.calibration"):
        validate_config({"committee": {"calibration": "isotonic"}})


CONFIG = {"descriptor": {"r_cut": 4.5, "n_max": 3, "l_max": 2, "sigma": 0.4},
          "ms_iso": {"n_inducing": 40}, "ood": {"n_inducing": 40}, "efg": {"alpha": 1e-3},
          "ms_aniso": {"alpha": 1e-3}, "committee": {"size": 8, "fraction": 0.5, "seed": 2, "calibration": "power"},
          "species": {"Si": {"properties": ["ms_iso", "ms_aniso"]}, "O": {"properties": ["efg"]}}}


def test_evaluator_applies_the_power_calibration():
    data = synthetic_dataset(n_structures=10, n_atoms=24, seed=8)
    model = NMRModel.train(data, CONFIG, progress=False)
    atoms = data.structures[3]
    prediction = model.predict(atoms)
    symbols = np.array(atoms.get_chemical_symbols())
    si, o = np.flatnonzero(symbols == "Si"), np.flatnonzero(symbols == "O")

    def law(regressor):
        return regressor.calibration_, regressor.calibration_power_, regressor.calibration_floor_

    def calibrated(std, spread, a, b, c):
        return np.sqrt((a * spread ** (b - 1) * std) ** 2 + c**2)

    iso = model.models[("Si", "ms_iso")].regressor
    assert law(iso) != (iso.calibration_, 1.0, 0.0)
    members = iso.predict_members(model.models[("Si", "ms_iso")].features(atoms, si))
    std = np.std(members, axis=0, ddof=1)
    np.testing.assert_allclose(prediction.ms_iso_std[si], calibrated(std, std, *law(iso)), rtol=1e-10)

    efg = model.models[("O", "efg")]
    members = efg.regressor.predict_members(efg.features(atoms, o))  # (K, n, 5)
    std = np.std(members, axis=0, ddof=1)
    spread = np.sqrt(np.mean(std**2, axis=1))
    a, b, c = law(efg.regressor)
    np.testing.assert_allclose(prediction.efg_std[o], calibrated(std, spread[:, None], a, b, c), rtol=1e-10)
    cartesian = l2_to_symmetric_traceless(members.reshape(-1, 5)).reshape(len(members), len(o), 3, 3)
    cq_per_au = CQ_MHZ_PER_MB_AU * quadrupolar_isotope("O", model.isotopes).quadrupole_moment_mb
    vzz_std, cq_std, pq_std, _ = _efg_reference(cartesian, prediction.efg[o], 1.0, cq_per_au)
    np.testing.assert_allclose(prediction.vzz_std[o], calibrated(vzz_std, spread, a, b, c), rtol=1e-9)
    np.testing.assert_allclose(prediction.cq_std[o], calibrated(cq_std, spread, a, b, c * abs(cq_per_au)), rtol=1e-9)
    np.testing.assert_allclose(prediction.pq_std[o], calibrated(pq_std, spread, a, b, c * abs(cq_per_au)), rtol=1e-9)


@pytest.mark.parametrize("seed", [60, 173, 287])
def test_power_calibration_fit_stays_finite_on_heavy_tailed_pairs(seed):
    """Heavy-tailed residuals and spreads on which L-BFGS-B once stepped the floor to
    exp(2 log c) = inf (an overflow warning in the likelihood): the floor is bounded
    (c ≤ FLOOR_MAX · RMS residual), the fit warns about nothing and the law is finite."""
    import warnings

    from ase_mlnmr.models.committee import FLOOR_MAX, power_calibration

    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 400))
    spreads = np.abs(rng.standard_t(2, size=n)) * 10 ** rng.uniform(-3, 1)
    residuals = rng.standard_t(int(rng.integers(1, 4)), size=n) * (1 + rng.uniform(0, 3) * spreads)
    if rng.random() < 0.3:
        spreads[rng.random(n) < 0.3] = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        a, b, c = power_calibration(residuals, spreads)
    assert np.isfinite([a, b, c]).all() and a > 0 and 0 <= b <= 2
    assert c <= FLOOR_MAX * np.sqrt(np.mean(residuals**2)) * (1 + 1e-12)
