"""Tests of RidgeRegression and EquivariantRidge (synthetic data, NumPy references)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from ase_mlnmr.models.linear import EquivariantRidge, RidgeRegression
from ase_mlnmr.core.spherical_tensors import l2_to_symmetric_traceless, symmetric_traceless_to_l2


def test_ridge_recovers_weights_and_intercept() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6)) * np.array([1.0, 10.0, 0.1, 3.0, 1.0, 50.0]) + 5.0
    w_true = rng.normal(size=6)
    y = X @ w_true + 123.0
    model = RidgeRegression(alpha=1e-10).fit(X, y)
    np.testing.assert_allclose(model.coef_, w_true, rtol=1e-6)
    assert model.intercept_ == pytest.approx(123.0, rel=1e-6)
    Xt = rng.normal(size=(20, 6))
    np.testing.assert_allclose(model.predict(Xt), Xt @ w_true + 123.0, rtol=1e-6, atol=1e-6)


def test_ridge_matches_closed_form() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 4)) * np.array([1.0, 2.0, 3.0, 4.0]) + 1.0
    y = rng.normal(size=60) * 7.0 + 3.0
    alpha = 2.5
    model = RidgeRegression(alpha=alpha).fit(X, y)
    # hand formula: centre, scale features and target by their std, solve, map back
    xm, xs = X.mean(0), X.std(0)
    ym, ys = y.mean(), y.std()
    Xs, yss = (X - xm) / xs, (y - ym) / ys
    w = np.linalg.solve(Xs.T @ Xs + alpha * np.eye(4), Xs.T @ yss)
    Xt = rng.normal(size=(10, 4))
    np.testing.assert_allclose(model.predict(Xt), ((Xt - xm) / xs) @ w * ys + ym, rtol=1e-10)
    # no intercept and no scaling: plain (X^T X + alpha I)^-1 X^T y
    plain = RidgeRegression(alpha=alpha, fit_intercept=False, scale_features=False, standardize_targets=False)
    plain.fit(X, y)
    np.testing.assert_allclose(plain.coef_, np.linalg.solve(X.T @ X + alpha * np.eye(4), X.T @ y), rtol=1e-10)
    assert plain.intercept_ == 0.0
    # several targets at once = separate fits
    Y = np.column_stack([y, 2 * y + X[:, 0]])
    multi = RidgeRegression(alpha=alpha).fit(X, Y)
    np.testing.assert_allclose(multi.predict(Xt)[:, 0], model.predict(Xt), rtol=1e-10)
    # round trip
    arrays, params = multi.to_arrays()
    again = RidgeRegression.from_arrays(arrays, json.loads(json.dumps(params)))
    np.testing.assert_array_equal(again.predict(Xt), multi.predict(Xt))


def _random_l2_features(rng: np.random.Generator, n: int, p: int) -> tuple[np.ndarray, np.ndarray]:
    """Features built from random vectors a, b per (sample, feature): the l = 2 components
    of sym(a b^T). Returns the vectors too, so that rotated features can be rebuilt."""
    vecs = rng.normal(size=(n, p, 2, 3))
    return _features_from_vectors(vecs), vecs


def _features_from_vectors(vecs: np.ndarray) -> np.ndarray:
    a, b = vecs[..., 0, :], vecs[..., 1, :]
    outer = a[..., :, None] * b[..., None, :]
    sym = 0.5 * (outer + np.swapaxes(outer, -1, -2))
    comps = symmetric_traceless_to_l2(sym)  # (n, p, 5)
    return np.swapaxes(comps, 1, 2)  # (n, 5, p)


def test_equivariant_ridge_recovers_weights() -> None:
    rng = np.random.default_rng(2)
    X, _ = _random_l2_features(rng, 300, 8)
    X *= np.array([1.0, 0.01, 5.0, 1.0, 100.0, 1.0, 0.3, 2.0])  # very different feature scales
    w_true = rng.normal(size=8)
    y = X @ w_true
    model = EquivariantRidge(lam=2, alpha=1e-12).fit(X, y)
    np.testing.assert_allclose(model.coef_, w_true, rtol=1e-6)
    assert model.predict(X).shape == (300, 5)


def test_equivariant_ridge_closed_form() -> None:
    rng = np.random.default_rng(3)
    X, _ = _random_l2_features(rng, 50, 5)
    y = X @ rng.normal(size=5) + 0.3 * rng.normal(size=(50, 5))
    alpha = 0.7
    model = EquivariantRidge(lam=2, alpha=alpha).fit(X, y)
    # (sum_mu X_mu^T X_mu + alpha I) w = sum_mu X_mu^T y_mu on RMS-scaled variables
    s = np.sqrt(np.mean(X**2, axis=(0, 1)))
    t = np.sqrt(np.mean(y**2))
    Xs = X / s
    G = sum(Xs[:, mu, :].T @ Xs[:, mu, :] for mu in range(5))
    h = sum(Xs[:, mu, :].T @ (y[:, mu] / t) for mu in range(5))
    w = np.linalg.solve(G + alpha * np.eye(5), h)
    np.testing.assert_allclose(model.coef_, w * t / s, rtol=1e-10)
    # serialisation keeps the raw weight vector
    arrays, params = model.to_arrays()
    np.testing.assert_allclose(arrays["coef"], w * t / s, rtol=1e-10)
    again = EquivariantRidge.from_arrays(arrays, json.loads(json.dumps(params)))
    np.testing.assert_array_equal(again.predict(X), model.predict(X))


def _badly_scaled_problem(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """λ = 2 features of six columns with scales from 0.01 to 100, and noisy linear targets."""
    X, _ = _random_l2_features(rng, n, 6)
    X *= np.array([1.0, 0.01, 5.0, 1.0, 100.0, 0.3])
    return X, X @ rng.normal(size=6) + noise * rng.normal(size=(n, 5))


@pytest.mark.parametrize("feature_scaling", ["global", "none"])
def test_equivariant_ridge_other_feature_scalings_closed_form(feature_scaling: str) -> None:
    X, y = _badly_scaled_problem(np.random.default_rng(13), 40, noise=0.3)
    alpha = 0.05
    model = EquivariantRidge(lam=2, alpha=alpha, feature_scaling=feature_scaling).fit(X, y)
    # one scale for every feature: the RMS over all entries ("global") or 1 ("none")
    s = np.sqrt(np.mean(X**2)) if feature_scaling == "global" else 1.0
    t = np.sqrt(np.mean(y**2))
    flat, targets = (X / s).reshape(-1, 6), (y / t).reshape(-1)
    w = np.linalg.solve(flat.T @ flat + alpha * np.eye(6), flat.T @ targets)
    np.testing.assert_allclose(model.coef_, w * t / s, rtol=1e-10)
    arrays, params = model.to_arrays()
    assert params["feature_scaling"] == feature_scaling
    again = EquivariantRidge.from_arrays(arrays, json.loads(json.dumps(params)))
    np.testing.assert_array_equal(again.predict(X), model.predict(X))


def test_equivariant_ridge_reads_the_older_boolean_scaling_parameter() -> None:
    rng = np.random.default_rng(14)
    X, _ = _random_l2_features(rng, 30, 4)
    model = EquivariantRidge(lam=2, alpha=0.1).fit(X, X @ rng.normal(size=4))
    arrays, params = model.to_arrays()
    params.pop("feature_scaling")
    params["scale_features"] = False
    assert EquivariantRidge.from_arrays(arrays, params).feature_scaling == "none"
    with pytest.raises(ValueError, match="feature_scaling"):
        EquivariantRidge(lam=2, feature_scaling="per_column")


@pytest.mark.parametrize("feature_scaling", ["per_feature", "global"])
def test_equivariance_lambda2_any_scaling(feature_scaling: str) -> None:
    rng = np.random.default_rng(15)
    X, y = _badly_scaled_problem(rng, 120, noise=0.2)
    model = EquivariantRidge(lam=2, alpha=1e-2, feature_scaling=feature_scaling).fit(X, y)
    _, vq = _random_l2_features(rng, 10, 6)
    T = model.predict_cartesian(_features_from_vectors(vq))
    for R in Rotation.random(3, random_state=16).as_matrix():
        T_rot = model.predict_cartesian(_features_from_vectors(vq @ R.T))
        np.testing.assert_allclose(T_rot, R @ T @ R.T, atol=1e-10 * np.abs(T).max())


def test_equivariance_lambda2() -> None:
    rng = np.random.default_rng(4)
    X, vecs = _random_l2_features(rng, 200, 6)
    y = X @ rng.normal(size=6) + 0.2 * rng.normal(size=(200, 5))  # noisy: fit is not exact
    model = EquivariantRidge(lam=2, alpha=1e-3).fit(X, y)
    Xq, vq = _random_l2_features(rng, 20, 6)
    T = model.predict_cartesian(Xq)
    np.testing.assert_allclose(T, np.swapaxes(T, 1, 2), atol=1e-12)
    np.testing.assert_allclose(np.trace(T, axis1=1, axis2=2), 0.0, atol=1e-12)
    for R in Rotation.random(3, random_state=5).as_matrix():
        rotated = _features_from_vectors(vq @ R.T)  # every vector v -> R v
        T_rot = model.predict_cartesian(rotated)
        np.testing.assert_allclose(T_rot, R @ T @ R.T, atol=1e-10)


def test_equivariance_lambda1() -> None:
    rng = np.random.default_rng(6)
    perm = [1, 2, 0]  # spherical l = 1 order (y, z, x)
    vecs = rng.normal(size=(150, 4, 3))
    X = np.swapaxes(vecs[..., perm], 1, 2)  # (n, 3, p)
    y = X @ rng.normal(size=4) + 0.1 * rng.normal(size=(150, 3))
    model = EquivariantRidge(lam=1, alpha=1e-3).fit(X, y)
    vq = rng.normal(size=(10, 4, 3))
    pred = model.predict(np.swapaxes(vq[..., perm], 1, 2))
    A = model.predict_cartesian(np.swapaxes(vq[..., perm], 1, 2))
    np.testing.assert_allclose(A, -np.swapaxes(A, 1, 2), atol=1e-12)
    for R in Rotation.random(3, random_state=7).as_matrix():
        rot = model.predict(np.swapaxes((vq @ R.T)[..., perm], 1, 2))
        back = np.zeros_like(rot)
        back[:, perm] = rot  # to (x, y, z)
        ref = np.zeros_like(pred)
        ref[:, perm] = pred
        np.testing.assert_allclose(back, ref @ R.T, atol=1e-10)


def test_intercept_or_centring_would_break_equivariance() -> None:
    """Sanity check of the test above: an ordinary ridge with intercept on the stacked
    components is not equivariant on the same data, so the check can fail."""
    rng = np.random.default_rng(8)
    X, _ = _random_l2_features(rng, 200, 4)
    y = X @ rng.normal(size=4) + 1.0  # offset on every component
    model = EquivariantRidge(lam=2, alpha=1e-6).fit(X, y)
    per_component = [RidgeRegression(alpha=1e-6).fit(X[:, mu, :], y[:, mu]) for mu in range(5)]
    Xq, vq = _random_l2_features(rng, 5, 4)
    R = Rotation.random(random_state=9).as_matrix()
    Xr = _features_from_vectors(vq @ R.T)

    def naive(F: np.ndarray) -> np.ndarray:
        return l2_to_symmetric_traceless(np.column_stack([m.predict(F[:, mu, :]) for mu, m in enumerate(per_component)]))

    assert not np.allclose(naive(Xr), R @ naive(Xq) @ R.T, atol=1e-3)
    np.testing.assert_allclose(model.predict_cartesian(Xr), R @ model.predict_cartesian(Xq) @ R.T, atol=1e-10)


def test_shape_errors() -> None:
    with pytest.raises(ValueError):
        EquivariantRidge(lam=2).fit(np.zeros((4, 3, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError):
        EquivariantRidge(lam=2).fit(np.ones((4, 5, 2)), np.zeros((4, 3)))
    with pytest.raises(RuntimeError):
        EquivariantRidge().predict(np.zeros((1, 5, 2)))


def test_dual_form_equals_primal_when_features_outnumber_samples():
    from ase_mlnmr.models.linear import ridge_weights

    rng = np.random.default_rng(12)
    design = rng.normal(size=(40, 300))
    targets = rng.normal(size=40)
    alpha = 0.3
    primal = np.linalg.solve(design.T @ design + alpha * np.eye(300), design.T @ targets)
    np.testing.assert_allclose(ridge_weights(design, targets, alpha), primal, rtol=1e-8, atol=1e-12)
