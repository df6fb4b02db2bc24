"""The power-law calibration fit (L-BFGS-B with the analytic gradient) ends at a minimum of an
independently written negative log likelihood (plain loops over nodes, NumPy only); its
likelihood and gradient equal a row-by-row evaluation; "power_eiv" regressors record w."""
from __future__ import annotations

import numpy as np
import pytest

from ase_mlnmr.models.committee import POWER_BOUNDS, power_calibration, power_likelihood, spread_noise_nodes


def _nll(a, b, c, residuals, spreads, dof):
    """−Σ_i log Σ_n w_n N_d(r_i; 0, a² σ_in^(2b) + c²), σ_in² = s_i² ratio_n (exact s without dof)."""
    total = 0.0
    for r, s, nu in zip(residuals, spreads, dof if dof is not None else [None] * len(spreads)):
        ratio, weight = (np.array([1.0]), np.array([1.0])) if nu is None else (
            np.exp(spread_noise_nodes(nu)[0]), np.exp(spread_noise_nodes(nu)[1]))
        u2 = a**2 * (s**2 * ratio) ** b + c**2
        density = (2 * np.pi * u2) ** (-r.size / 2) * np.exp(-0.5 * np.sum(r**2) / u2)
        total -= np.log(np.sum(weight * density))
    return total


@pytest.mark.parametrize("d, with_dof", [(1, False), (1, True), (5, True)])
def test_fit_is_a_minimum_of_an_independent_likelihood(d, with_dof):
    rng = np.random.default_rng(11 + d)
    n = 400
    s = np.exp(rng.normal(0.0, 0.7, n))
    r = rng.normal(size=(n, d)) * np.sqrt(1.3**2 * s[:, None] ** 1.4 + 0.4**2)
    dof = np.full(n, 3.0 * d) if with_dof else None
    a, b, c = power_calibration(r, s, dof)
    assert 0.0 < b < 2.0 and c > 0.0
    best = _nll(a, b, c, r, s, dof)
    for step in ((1.003, 0, 1), (0.997, 0, 1), (1, 0.003, 1), (1, -0.003, 1), (1, 0, 1.003), (1, 0, 0.997)):
        assert best <= _nll(a * step[0], b + step[1], c * step[2], r, s, dof) + 1e-9 * abs(best)


def _slow_likelihood(theta, residuals, spreads, dof):
    """(value, gradient) in θ = (log a, b, log c) of −Σ_i log Σ_n π_n N_d(r_i; 0, u_in²) without
    the constant (d/2) log 2π, u_in² = min(a² σ_in^(2b), e^700) + c², σ_in² = s_i² q_n (power 0
    where s_i = 0), written row by row from the formula:
    ∂/∂θ = −Σ_n p_in ½ (|r_i|²/u_in² − d)/u_in² ∂u_in²/∂θ, with ∂u²/∂ log a = 2 a² σ^(2b),
    ∂u²/∂b = a² σ^(2b) log σ², ∂u²/∂ log c = 2c² (the first two 0 for a clipped power)."""
    log_a, b, log_c = theta
    value, gradient = 0.0, np.zeros(3)
    for r, s, nu in zip(residuals, spreads, dof if dof is not None else [None] * len(spreads)):
        if not (np.isfinite(s) and np.all(np.isfinite(r))):
            continue
        log_ratio, log_weight = (np.zeros(1), np.zeros(1)) if nu is None else spread_noise_nodes(nu)
        d, r2 = r.size, float(np.sum(r**2))
        if s > 0:
            log_sigma2 = 2 * np.log(s) + log_ratio
            exponent = 2 * log_a + b * log_sigma2
            power = np.exp(np.minimum(exponent, 700.0))
            moving = np.where(exponent < 700.0, power, 0.0)
        else:
            log_sigma2, power, moving = np.zeros_like(log_ratio), np.zeros_like(log_ratio), np.zeros_like(log_ratio)
        u2 = power + np.exp(2 * log_c)
        log_density = log_weight - 0.5 * d * np.log(u2) - 0.5 * r2 / u2
        posterior = np.exp(log_density - log_density.max())
        value -= log_density.max() + np.log(posterior.sum())
        slope = posterior / posterior.sum() * 0.5 * (r2 / u2 - d) / u2
        gradient -= [np.sum(slope * 2 * moving), np.sum(slope * moving * log_sigma2),
                     np.sum(slope) * 2 * np.exp(2 * log_c)]
    return value, gradient


def _mixed_rows(d, n=300, seed=0):
    """Rows in no particular order with ν = d (n_i − 1) for 4…8 left-out members, two zero and
    one undefined spread, heavy-tailed residuals."""
    rng = np.random.default_rng(seed)
    count = rng.integers(4, 9, n)
    s = np.exp(rng.normal(np.log(3.0), 0.8, n))
    s[[5, 17]], s[40] = 0.0, np.nan
    r = rng.standard_t(4, size=(n, d)) * np.sqrt(0.9**2 * np.nan_to_num(s)[:, None] ** 1.6 + 0.5**2) * 2.5
    return r, s, d * (count - 1.0)


@pytest.mark.parametrize("d, with_dof", [(1, False), (1, True), (5, True), (5, False)])
def test_likelihood_and_gradient_equal_a_row_by_row_evaluation(d, with_dof):
    """power_likelihood (outer products per ν, shared nodes, its own log-sum-exp) against
    the formula evaluated row by row, at points inside, on the edge of and far outside the
    fitted region (log a = 400: every power clipped at e^700), and its gradient against
    central differences of the row-by-row value where nothing is clipped."""
    residuals, spreads, dof = _mixed_rows(d, seed=d)
    dof = dof if with_dof else None
    nll, rms, mean_log_s = power_likelihood(residuals, spreads, dof)
    usable = np.isfinite(spreads)
    assert rms == pytest.approx(np.sqrt(np.mean(residuals[usable] ** 2)), rel=1e-14)
    positive = usable & (spreads > 0)
    assert mean_log_s == pytest.approx(np.mean(np.log(spreads[positive] / rms)), rel=1e-14)
    scaled_r, scaled_s = residuals / rms, spreads / rms
    for theta in ([0.1, 0.7, -1.0], [-5.0, 0.0, 0.0], [0.4, 2.0, np.log(1e-6)], [2.0, 1.3, np.log(1e3)],
                  [400.0, 1.0, -2.0], [340.0, 0.5, -1.0]):
        theta = np.array(theta)
        value, gradient = nll(theta)
        reference, reference_gradient = _slow_likelihood(theta, scaled_r, scaled_s, dof)
        assert value == pytest.approx(reference, rel=1e-12)
        np.testing.assert_allclose(gradient, reference_gradient, rtol=1e-10,
                                   atol=1e-12 * np.max(np.abs(reference_gradient)))
    for theta in ([0.1, 0.7, -1.0], [-0.5, 1.6, 0.3]):
        steps = 1e-5 * np.eye(3)
        central = [(_slow_likelihood(theta + h, scaled_r, scaled_s, dof)[0]
                    - _slow_likelihood(theta - h, scaled_r, scaled_s, dof)[0]) / 2e-5 for h in steps]
        np.testing.assert_allclose(nll(np.array(theta))[1], central, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("d", [1, 5])
def test_fit_on_mixed_degrees_of_freedom_is_a_minimum_of_the_row_by_row_likelihood(d):
    """Rows of several ν, zero and undefined spreads (a Venetos-like calibration set): the
    fitted law, in units of the RMS residual, is a minimum of the row-by-row likelihood."""
    residuals, spreads, dof = _mixed_rows(d, n=400, seed=10 + d)
    a, b, c = power_calibration(residuals, spreads, dof)
    rms = np.sqrt(np.mean(residuals[np.isfinite(spreads)] ** 2))
    theta = np.array([np.log(a * rms ** (b - 1.0)), b, np.log(c / rms)])
    best = _slow_likelihood(theta, residuals / rms, spreads / rms, dof)[0]
    for step in ((0.003, 0, 0), (-0.003, 0, 0), (0, 0.003, 0), (0, -0.003, 0), (0, 0, 0.003), (0, 0, -0.003)):
        moved = theta + np.array(step)
        if POWER_BOUNDS[0] <= moved[1] <= POWER_BOUNDS[1]:
            assert best <= _slow_likelihood(moved, residuals / rms, spreads / rms, dof)[0] + 1e-9 * abs(best)


@pytest.mark.parametrize("kind", ["nystrom", "equivariant"])
def test_regressor_records_the_shrinkage_weight_folded_into_its_law(kind, monkeypatch):
    """"power_eiv": ``calibration_shrinkage_weight_`` is the w of :func:`shrinkage_weight` on
    the regressor's own refit residuals and left-out spreads, and the stored law is the
    noise-aware fit shrunk by that w; "scale" and "power" record none."""
    from test_committee import _regression_data
    from test_committee_refits import _recording

    from ase_mlnmr.models import linear, nystrom
    from ase_mlnmr.models.committee import (CommitteeSettings, calibration_folds, committee_design,
                                            out_of_sample_spread, shrinkage_weight)

    if kind == "nystrom":
        X, y, groups = _regression_data(n_groups=30, per_group=6, seed=7)
        module = nystrom

        def fit(calibration):
            return nystrom.NystromKernelRidge(n_inducing=30, length_scale=2.0, ridge=1e-3).fit(
                X, y, member_rows=rows, calibration=calibration)
    else:
        rng = np.random.default_rng(8)
        X = rng.normal(size=(120, 5, 40))
        y = np.einsum("nmp,p->nm", X, rng.normal(size=40) / np.sqrt(40)) + 0.3 * rng.normal(size=(120, 5))
        groups, module = np.repeat(np.arange(30), 4), linear

        def fit(calibration):
            return linear.EquivariantRidge(alpha=1e-2).fit(X, y, member_rows=rows, calibration=calibration)
    rows = committee_design(groups, CommitteeSettings(size=8, fraction=0.5, seed=6))
    for calibration in ("scale", "power"):
        assert fit(calibration).calibration_shrinkage_weight_ is None
    calls = _recording(module, monkeypatch)
    model = fit("power_eiv")
    (refits,) = calls
    if kind == "equivariant":  # its refits see the atoms sorted by membership pattern
        order = np.argsort(np.unique(rows.T, axis=0, return_inverse=True)[1].ravel(), kind="stable")
        X, y, rows = X[order], y[order], rows[:, order]
    residuals = np.empty_like(y)
    for fit_rows, predicted in refits:
        residuals[~fit_rows] = (y - np.reshape(predicted, y.shape))[~fit_rows]
    spreads = out_of_sample_spread(model.predict_members(X), rows)
    dof = residuals[0].size * ((~rows).sum(axis=0) - 1)
    w = shrinkage_weight(residuals, spreads, dof, calibration_folds(rows))
    assert model.calibration_shrinkage_weight_ == w
    a, b, c = power_calibration(residuals, spreads, dof)
    sigma0 = np.sqrt(np.mean(residuals**2))
    np.testing.assert_allclose((model.calibration_, model.calibration_power_, model.calibration_floor_),
                               (max(np.sqrt(w), 1e-6) * a, b, np.sqrt(w * c**2 + (1 - w) * sigma0**2)), rtol=1e-8)
