"""Calibration "power_eiv" (protocol v2): the power law fitted with the calibration spreads'
sampling noise integrated out, then shrunk towards a constant σ by calibration-fold CV.

References are independent: inverse-gamma moments and scipy quadrature of the noise
integral, scipy's Student-t fit (the b = 1, c = 0 case), data drawn from the method's own
generative model with known (a, b, c), and the shrunk law written out by hand.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from ase_mlnmr.models.committee import (CommitteeSettings, calibration_folds, committee_design, fit_calibration,
                                        out_of_sample_spread, power_calibration, shrinkage_weight,
                                        spread_noise_nodes)
from ase_mlnmr.models.nystrom import NystromKernelRidge
from ase_mlnmr.nmr_model import NMRModel
from ase_mlnmr.training.config import ConfigError, validate_config

from synthetic_data import synthetic_dataset
from test_committee import _regression_data


@pytest.mark.parametrize("dof", [3.0, 7.0, 15.0, 35.0])
def test_noise_nodes_integrate_the_inverse_gamma_posterior(dof):
    """σ² | s² = ν s² / χ²_ν: weights sum to 1, E[σ²/s²] = ν/(ν − 2), and the Gaussian
    likelihood of small and large residuals (u² = q^b + 0.05, q = σ²/s²) matches scipy
    quadrature of the inverse-gamma density."""
    log_ratio, log_weight = spread_noise_nodes(dof)
    weight, ratio = np.exp(log_weight), np.exp(log_ratio)
    assert weight.sum() == pytest.approx(1.0, rel=1e-12)
    assert np.sum(weight * ratio) == pytest.approx(dof / (dof - 2.0), rel=1e-5)
    k = dof / 2.0
    for b in (0.3, 1.0, 2.0):
        for r in (0.1, 1.0, 5.0):
            likelihood = lambda q: stats.norm.pdf(r, scale=np.sqrt(q**b + 0.05))  # noqa: E731
            in_log_t = lambda y: likelihood(dof / (2 * np.exp(y))) * stats.gamma(k).pdf(np.exp(y)) * np.exp(y)  # noqa: E731,B023
            reference = integrate.quad(in_log_t, -80 / k, 8, limit=1000, epsabs=0, epsrel=1e-11,
                                       points=[-20, -10, -5, 0, 2])[0]
            assert np.sum(weight * likelihood(ratio)) == pytest.approx(reference, rel=1e-3)


def test_noise_nodes_refuse_no_degrees_of_freedom():
    with pytest.raises(ValueError, match="degrees of freedom"):
        spread_noise_nodes(0.0)


def _draw_from_the_model(a, b, c, n=6000, d=1, members=4, seed=0):
    """Observed spreads s_i (log-normal), true σ_i² = ν s_i² / χ²_ν (the method's posterior),
    residuals r_i ~ N(0, a² σ_i^(2b) + c²) with d components."""
    rng = np.random.default_rng(seed)
    s = np.exp(rng.normal(0.0, 0.8, n)) * 2.0
    nu = d * (members - 1)
    sigma = s * np.sqrt(nu / rng.chisquare(nu, n))
    u = np.sqrt(a**2 * sigma ** (2 * b) + c**2)
    return rng.normal(size=(n, d)) * u[:, None], s, np.full(n, nu)


@pytest.mark.parametrize("a, b, c, d", [(1.5, 0.5, 1.0, 1), (0.7, 1.3, 0.05, 5), (2.0, 1.0, 0.8, 1)])
def test_noise_aware_fit_recovers_known_parameters(a, b, c, d):
    residuals, s, dof = _draw_from_the_model(a, b, c, d=d, seed=int(10 * a))
    np.testing.assert_allclose(power_calibration(residuals, s, dof), (a, b, c), rtol=0.12, atol=0.03)


def test_noise_aware_fit_is_the_student_t_of_musil_for_a_linear_law():
    """b = 1, c = 0, d = 1: r/s ~ a t_ν; the fitted a equals scipy's t scale on r/s."""
    rng = np.random.default_rng(5)
    n, nu = 8000, 3
    s = np.exp(rng.normal(0.0, 0.7, n))
    residuals = 1.8 * s * rng.standard_t(nu, n)
    a, b, c = power_calibration(residuals, s, np.full(n, nu))
    _, _, scale = stats.t.fit(residuals / s, fix_df=nu, floc=0.0)
    assert b == pytest.approx(1.0, abs=0.03)
    assert c < 0.05 * np.sqrt(np.mean(residuals**2))
    assert a == pytest.approx(scale, rel=0.03)
    assert a == pytest.approx(1.8, rel=0.05)


def test_noise_aware_fit_is_closer_than_plain_likelihood_when_spreads_are_noisy():
    """Spreads drawn with 4 members around a log-normal σ: plain Gaussian likelihood on
    the noisy s inflates a (the noise is read as signal); the noise-aware fit does less so."""
    rng = np.random.default_rng(11)
    n, nu, a = 6000, 3, 2.0
    sigma = np.exp(rng.normal(0.0, 0.8, n)) * 2.0
    residuals = rng.normal(size=n) * np.sqrt(a**2 * sigma**2 + 0.8**2)
    s = sigma * np.sqrt(rng.chisquare(nu, n) / nu)
    plain = power_calibration(residuals, s)
    aware = power_calibration(residuals, s, np.full(n, nu))
    assert abs(aware[0] - a) < abs(plain[0] - a)


def _folds(n, n_folds=5, seed=0):
    return np.random.default_rng(seed).permutation(np.arange(n) % n_folds)


def test_shrinkage_keeps_an_informative_spread_and_drops_an_uninformative_one():
    """Spreads on ν = 35 (a tensor spread of 8 members: little noise) that set the errors:
    w ≥ 0.9; errors independent of the spreads: w ≤ 0.3."""
    residuals, s, dof = _draw_from_the_model(2.0, 1.0, 0.3, n=1500, d=5, members=8, seed=2)
    assert shrinkage_weight(residuals, s, dof, _folds(len(s))) >= 0.9
    rng = np.random.default_rng(4)
    noise = rng.normal(0.0, 1.5, (1500, 5))  # independent of the spread
    assert shrinkage_weight(noise, s, dof, _folds(len(s))) <= 0.3


def test_shrinkage_weight_is_the_cross_validated_maximum():
    """Brute force over the same weight grid, every fold's law refitted by hand."""
    from ase_mlnmr.models.committee import SHRINKAGE_WEIGHTS

    residuals, s, dof = _draw_from_the_model(1.0, 0.6, 0.8, n=600, seed=9)
    folds = _folds(len(s), seed=3)
    laws = [power_calibration(residuals[folds != f], s[folds != f], dof[folds != f]) for f in range(5)]
    scores = []
    for w in SHRINKAGE_WEIGHTS:
        total = 0.0
        for f, (a, b, c) in enumerate(laws):
            u2 = w * (a**2 * s[folds == f] ** (2 * b) + c**2) + (1 - w) * np.mean(residuals[folds != f] ** 2)
            total += np.sum(stats.norm.logpdf(residuals[folds == f, 0], scale=np.sqrt(u2)))
        scores.append(total)
    assert shrinkage_weight(residuals, s, dof, folds) == SHRINKAGE_WEIGHTS[int(np.argmax(scores))]


def test_fit_calibration_power_eiv_returns_the_shrunk_law():
    """(a, b, c) = (√w a₀, b₀, sqrt(w c₀² + (1 − w) σ₀²)) from the noise-aware fit (a₀, b₀, c₀),
    the CV weight w and σ₀ = RMS of the refit residuals, with the degrees of freedom of the
    left-out members."""
    X, y, groups = _regression_data(n_groups=40, per_group=4)
    rows = committee_design(groups, CommitteeSettings(size=8, fraction=0.5, seed=1))
    model = NystromKernelRidge(n_inducing=30, length_scale=2.0, ridge=1e-3).fit(X, y, member_rows=rows,
                                                                               calibration="power")
    members = model.predict_members(X)

    def refit_predict(fit_rows):
        return NystromKernelRidge(n_inducing=30, length_scale=2.0, ridge=1e-3).fit(X[fit_rows], y[fit_rows]).predict(X)

    folds = calibration_folds(rows)
    residuals = np.empty_like(y)
    for f in np.unique(folds):
        residuals[folds == f] = (y - refit_predict(folds != f))[folds == f]
    spreads = out_of_sample_spread(members, rows)
    dof = (~rows).sum(axis=0) - 1
    a0, b0, c0 = power_calibration(residuals, spreads, dof)
    w = shrinkage_weight(residuals, spreads, dof, folds)
    sigma0 = np.sqrt(np.mean(residuals**2))
    a, b, c, constant = fit_calibration("power_eiv", members, y, rows, refit_predict)
    assert constant == pytest.approx(sigma0, rel=1e-12)
    np.testing.assert_allclose((a, b, c), (max(np.sqrt(w), 1e-6) * a0, b0, np.sqrt(w * c0**2 + (1 - w) * sigma0**2)),
                               rtol=1e-10)


def test_config_accepts_power_eiv_and_names_a_bad_value():
    assert validate_config({"committee": {"calibration": "power_eiv"}})["committee"]["calibration"] == "power_eiv"
    with pytest.raises(ConfigError, match="committee.calibration"):
        validate_config({"committee": {"calibration": "power_v2"}})
    with pytest.raises(ValueError, match="committee calibration must be one of"):
        fit_calibration("eiv", np.zeros((8, 4)), np.zeros(4), np.zeros((8, 4), bool), lambda rows: np.zeros(4))


def test_trained_model_with_power_eiv_predicts_the_law_and_survives_the_model_file(tmp_path):
    """End to end: σiso and EFG committees trained with "power_eiv"; the evaluator's σiso
    uncertainty is sqrt(a² s^(2b) + c²) of the members' spread; the saved file reloads it."""
    data = synthetic_dataset(n_structures=10, n_atoms=24, seed=8)
    config = {"descriptor": {"r_cut": 4.5, "n_max": 3, "l_max": 2, "sigma": 0.4},
              "ms_iso": {"n_inducing": 40}, "ood": {"n_inducing": 40}, "efg": {"alpha": 1e-3},
              "committee": {"size": 8, "fraction": 0.5, "seed": 2, "calibration": "power_eiv"},
              "species": {"Si": {"properties": ["ms_iso"]}, "O": {"properties": ["efg"]}}}
    model = NMRModel.train(data, config, progress=False)
    atoms = data.structures[3]
    si = np.flatnonzero(np.array(atoms.get_chemical_symbols()) == "Si")
    iso = model.models[("Si", "ms_iso")]
    a, b, c = iso.regressor.calibration_, iso.regressor.calibration_power_, iso.regressor.calibration_floor_
    assert np.isfinite([a, b, c]).all() and a > 0 and c > 0
    spread = np.std(iso.regressor.predict_members(iso.features(atoms, si)), axis=0, ddof=1)
    prediction = model.predict(atoms)
    np.testing.assert_allclose(prediction.ms_iso_std[si], np.sqrt(a**2 * spread ** (2 * b) + c**2), rtol=1e-10)
    path = tmp_path / "model.npz"
    model.save(path)
    reloaded = NMRModel.load(path).predict(atoms)
    np.testing.assert_allclose(reloaded.ms_iso_std, prediction.ms_iso_std, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(reloaded.efg_std, prediction.efg_std, rtol=1e-12, equal_nan=True)
