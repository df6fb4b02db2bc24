"""Tests of the Nyström kernel ridge (LSSVR) model against closed-form NumPy references."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from ase_mlnmr.models.nystrom import NystromKernelRidge, pivoted_cholesky


@pytest.fixture(autouse=True)
def _single_blas_thread():
    """Run on one BLAS thread: on a shared 2-core machine oversubscription slows BLAS a lot."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def rbf(A: np.ndarray, B: np.ndarray, ell: float) -> np.ndarray:
    """Reference Gaussian kernel exp(-|a-b|^2 / (2 l^2)) through scipy's cdist."""
    return np.exp(-cdist(A, B, "sqeuclidean") / (2.0 * ell**2))


def naive_pivoted_cholesky(K: np.ndarray, rank: int, tol: float = 0.0):
    """Textbook greedy pivoted Cholesky on an explicit matrix (reference)."""
    n = K.shape[0]
    d = np.diag(K).copy()
    L = np.zeros((n, rank))
    piv = []
    for j in range(rank):
        if d.sum() / n <= tol:
            break
        p = int(np.argmax(d))
        L[:, j] = (K[:, p] - L[:, :j] @ L[p, :j]) / np.sqrt(d[p])
        d = d - L[:, j] ** 2
        d[piv + [p]] = 0.0
        piv.append(p)
    return np.array(piv), L[:, : len(piv)], d


def smooth(X: np.ndarray) -> np.ndarray:
    return np.sin(1.5 * X[:, 0]) + 0.5 * X[:, 1] * X[:, 2] - 0.3 * X[:, 0] ** 2


def test_recovers_known_function() -> None:
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, size=(3000, 3))
    y = smooth(X) + 0.01 * rng.normal(size=len(X))
    model = NystromKernelRidge(n_inducing=400, length_scale=0.8, ridge=1e-4).fit(X, y)
    Xt = rng.uniform(-1.8, 1.8, size=(500, 3))
    err = model.predict(Xt) - smooth(Xt)
    assert np.sqrt(np.mean(err**2)) < 0.02 * np.std(smooth(Xt))


def test_pivoted_cholesky_matches_textbook_algorithm() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 4))
    ell = 1.3
    K = rbf(X, X, ell)
    ref_piv, ref_L, ref_d = naive_pivoted_cholesky(K, 120)
    exact = pivoted_cholesky(X, ell, 120, block_size=1)
    np.testing.assert_array_equal(exact.pivots, ref_piv)
    np.testing.assert_allclose(exact.factor, ref_L, atol=1e-10)
    np.testing.assert_allclose(exact.residual, ref_d, atol=1e-10)
    assert exact.n_exact == 120
    for block in (16, 50):
        blocked = pivoted_cholesky(X, ell, 120, block_size=block, pool_factor=3)
        L, piv = blocked.factor, blocked.pivots
        assert piv.size == 120 and np.unique(piv).size == 120
        # certified leading pivots are the greedy ones
        np.testing.assert_array_equal(piv[: blocked.n_exact], ref_piv[: blocked.n_exact])
        # exact on the pivot columns, residual = diag(K - L L^T), L_Z lower triangular
        np.testing.assert_allclose(L @ L[piv].T, K[:, piv], atol=1e-10)
        np.testing.assert_allclose(blocked.residual, np.diag(K - L @ L.T), atol=1e-10)
        np.testing.assert_allclose(np.triu(L[piv], 1), 0.0)
        # trace history: mean residual after each pivot, from the explicit matrices
        for t in (0, 59, 119):
            Lt = L[:, : t + 1]
            np.testing.assert_allclose(blocked.trace_history[t], np.trace(K - Lt @ Lt.T) / len(X), atol=1e-10)
        # a greedy-in-pool choice is as good as the one-at-a-time greedy (within 20 %)
        assert blocked.trace_history[-1] < 1.2 * exact.trace_history[-1]


def test_pivoted_cholesky_stops_at_tolerance() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(500, 2))
    tol = 1e-4
    res = pivoted_cholesky(X, 1.0, 500, tol, block_size=32)
    K = rbf(X, X, 1.0)
    L = res.factor
    m = res.rank
    assert 1 < m < 500
    assert np.trace(K - L @ L.T) / len(X) <= tol
    Lm = L[:, : m - 1]
    assert np.trace(K - Lm @ Lm.T) / len(X) > tol  # one pivot fewer would not do
    ref_piv, _, _ = naive_pivoted_cholesky(K, 500, tol)
    assert abs(ref_piv.size - m) <= 0.1 * m  # about the same rank as the textbook greedy


def test_equals_exact_krr_with_all_points() -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(250, 5))
    y = smooth(X) + 0.1 * rng.normal(size=len(X))
    ell, eps = 1.0, 1e-3
    model = NystromKernelRidge(n_inducing=len(X), length_scale=ell, ridge=eps, tol=0.0, standardize_features=False)
    model.fit(X, y)
    assert model.n_inducing_ == len(X)
    # closed form: alpha = (K + eps I)^-1 (y - mean)/std on the centred features
    mu, sd = y.mean(), y.std()
    alpha = np.linalg.solve(rbf(X, X, ell) + eps * np.eye(len(X)), (y - mu) / sd)
    Xt = rng.normal(size=(100, 5))
    ref = rbf(Xt, X, ell) @ alpha * sd + mu  # kernel is translation invariant: centring is irrelevant
    np.testing.assert_allclose(model.predict(Xt), ref, rtol=1e-8, atol=1e-8)


def test_solves_the_lssvr_normal_equations_and_converges() -> None:
    rng = np.random.default_rng(4)
    X = rng.normal(size=(800, 3))
    y = smooth(X) + 0.05 * rng.normal(size=len(X))
    ell, eps = 1.2, 1e-3
    Xt = rng.normal(size=(300, 3))
    mu, sd = y.mean(), y.std()
    exact = rbf(Xt, X, ell) @ np.linalg.solve(rbf(X, X, ell) + eps * np.eye(len(X)), (y - mu) / sd) * sd + mu
    errors = []
    for m in (10, 40, 160, 320, 640):
        model = NystromKernelRidge(m, ell, eps, tol=0.0, standardize_features=False).fit(X, y)
        Z = X[model.inducing_indices_]
        Kxz, Kzz = rbf(X, Z, ell), rbf(Z, Z, ell)
        # the weights satisfy (K_ZX K_XZ + eps K_ZZ) w = K_ZX y_s, built from explicit matrices
        A = Kxz.T @ Kxz + eps * Kzz
        b = Kxz.T @ ((y - mu) / sd)
        w = model.weights_[:, 0]
        assert np.linalg.norm(A @ w - b) < 1e-9 * np.linalg.norm(b)
        pred = model.predict(Xt)
        np.testing.assert_allclose(pred, rbf(Xt, Z, ell) @ w * sd + mu, atol=1e-10)
        if np.linalg.cond(Kzz) < 1e6:
            # a direct solve of the explicit system is accurate enough only while K_ZZ is
            # well conditioned; beyond, it is less accurate than the factorised solver
            w_ref = np.linalg.solve(A, b)
            np.testing.assert_allclose(pred, rbf(Xt, Z, ell) @ w_ref * sd + mu, atol=1e-6)
        errors.append(np.max(np.abs(pred - exact)))
    assert all(b < a for a, b in zip(errors, errors[1:]))
    assert errors[-1] < 1e-3 * errors[0]


def test_out_of_domain_score() -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(600, 4))
    y = smooth(X)
    ell = 1.5
    model = NystromKernelRidge(150, ell, 1e-4, tol=0.0, standardize_features=False).fit(X, y)
    r_train = model.out_of_domain(X)
    np.testing.assert_allclose(r_train, model.train_residual_, atol=1e-9)
    assert np.all(r_train[model.inducing_indices_] < 1e-9)
    assert r_train.mean() < 1e-2
    # reference r(x) = 1 - k_xZ K_ZZ^-1 k_Zx on nearby and far points
    Z = X[model.inducing_indices_]
    Xt = np.vstack([rng.normal(size=(50, 4)), rng.normal(size=(20, 4)) + 8.0, rng.normal(size=(5, 4)) + 1e3])
    Kxz = rbf(Xt, Z, ell)
    ref = 1.0 - np.einsum("ij,ji->i", Kxz, np.linalg.solve(rbf(Z, Z, ell), Kxz.T))
    r = model.out_of_domain(Xt)
    np.testing.assert_allclose(r, ref, atol=1e-6)
    assert np.all((r >= 0) & (r <= 1))
    assert np.all(r[50:] > 0.99) and np.all(r[-5:] == pytest.approx(1.0))
    assert r[:50].mean() < 0.05


def test_feature_preprocessing_invariances() -> None:
    rng = np.random.default_rng(6)
    X = rng.normal(size=(400, 3))
    y = smooth(X)
    Xt = rng.normal(size=(50, 3))
    scale = np.array([1e-3, 10.0, 250.0])
    base = NystromKernelRidge(100, 1.0, 1e-4).fit(X, y)
    scaled = NystromKernelRidge(100, 1.0, 1e-4).fit(X * scale + 7.0, y)
    np.testing.assert_allclose(scaled.predict(Xt * scale + 7.0), base.predict(Xt), atol=1e-7)
    # unit-length normalisation: predictions ignore the length of each feature vector
    Xp = np.abs(X) + 0.1
    norm = NystromKernelRidge(100, 0.5, 1e-4, normalize_features=True).fit(Xp, y)
    Xq = np.abs(Xt) + 0.1
    lengths = rng.uniform(0.1, 10.0, size=(50, 1))
    np.testing.assert_allclose(norm.predict(Xq * lengths), norm.predict(Xq), atol=1e-10)
    # with normalisation and no standardisation, the transform is exactly x/|x| - mean
    raw = NystromKernelRidge(100, 0.5, 1e-4, normalize_features=True, standardize_features=False).fit(Xp, y)
    unit = Xp / np.linalg.norm(Xp, axis=1, keepdims=True)
    np.testing.assert_allclose(raw.transform(Xp), unit - unit.mean(axis=0), atol=1e-12)


def test_multi_target_set_ridge_and_round_trip() -> None:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(500, 3))
    Y = np.column_stack([smooth(X), 100.0 + 20.0 * np.cos(X[:, 1])])
    Xt = rng.normal(size=(40, 3))
    both = NystromKernelRidge(120, 1.0, 1e-3).fit(X, Y)
    for k in range(2):
        single = NystromKernelRidge(120, 1.0, 1e-3).fit(X, Y[:, k])
        np.testing.assert_allclose(both.predict(Xt)[:, k], single.predict(Xt), rtol=1e-9, atol=1e-9)
    refit = NystromKernelRidge(120, 1.0, 1e-1).fit(X, Y)
    np.testing.assert_allclose(both.set_ridge(1e-1).predict(Xt), refit.predict(Xt), rtol=1e-9, atol=1e-9)

    arrays, params = both.to_arrays()
    json.dumps(params)
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in arrays.values())
    loaded = NystromKernelRidge.from_arrays(arrays, json.loads(json.dumps(params)))
    np.testing.assert_array_equal(loaded.predict(Xt), both.predict(Xt))
    np.testing.assert_array_equal(loaded.out_of_domain(Xt), both.out_of_domain(Xt))
    with pytest.raises(ValueError):
        loaded.predict(Xt[:, :2])


def test_scaling_many_environments_few_inducing_points() -> None:
    """1e5 synthetic environments (16 features on a 3-D latent manifold, 85 % of them in
    one dense cluster), 1500 inducing points: the pivoted Cholesky must cover the sparse
    region that a random choice of the same size misses, and the model must beat exact
    KRR fitted on a 3000-point subset, down below the label noise."""
    rng = np.random.default_rng(11)
    n, n_features, noise, ell, m = 100_000, 16, 0.05, 2.0, 1500
    proj, shift = rng.normal(size=(3, n_features)), rng.normal(size=n_features)

    def latent(k: int) -> np.ndarray:
        t = rng.uniform(-1, 1, size=(k, 3))
        dense = rng.random(k) < 0.85
        t[dense] = 0.2 * rng.normal(size=(int(dense.sum()), 3))
        return t

    def features(t: np.ndarray) -> np.ndarray:
        return np.tanh(0.7 * t @ proj + shift)

    def truth(t: np.ndarray) -> np.ndarray:
        return np.sin(2.5 * t[:, 0]) * np.cos(1.5 * t[:, 1]) + 0.5 * t[:, 2] ** 2

    t = latent(n)
    X = features(t)
    y = truth(t) + noise * rng.normal(size=n)
    t_test = rng.uniform(-1, 1, size=(2000, 3))
    X_test, y_test = features(t_test), truth(t_test)

    model = NystromKernelRidge(m, ell, ridge=1e-5, tol=1e-7).fit(X, y)
    assert model.n_inducing_ <= m
    assert model.trace_history_[-1] < 1e-3
    rmse = np.sqrt(np.mean((model.predict(X_test) - y_test) ** 2))

    Xs = model.transform(X)
    Xts = model.transform(X_test)
    sample = rng.choice(n, 4000, replace=False)
    # a random inducing set of the same size: Nyström residual on the same sample
    rand = rng.choice(n, model.n_inducing_, replace=False)
    Lr = np.linalg.cholesky(rbf(Xs[rand], Xs[rand], ell) + 1e-10 * np.eye(rand.size))
    phi = np.linalg.solve(Lr, rbf(Xs[rand], Xs[sample], ell))
    r_random = 1.0 - np.sum(phi**2, axis=0)
    r_icd = model.train_residual_[sample]
    assert r_icd.mean() < 0.1 * r_random.mean()
    assert r_icd.max() < 0.1 * r_random.max()

    # exact KRR (closed form) on a 3000-point subset, best of a few ridge values
    sub = rng.choice(n, 3000, replace=False)
    K = rbf(Xs[sub], Xs[sub], ell)
    Kt = rbf(Xts, Xs[sub], ell)
    best = np.inf
    for eps in (1e-4, 1e-3, 1e-2):
        alpha = np.linalg.solve(K + eps * np.eye(sub.size), y[sub] - y[sub].mean())
        best = min(best, np.sqrt(np.mean((Kt @ alpha + y[sub].mean() - y_test) ** 2)))
    assert rmse < best
    assert rmse < 0.5 * noise


# ----------------------------------------------------------------- dot-product kernel
def unit_rows(A: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (reference; all-zero rows stay zero)."""
    n = np.sqrt(np.sum(A * A, axis=1, keepdims=True))
    return A / np.where(n > 0, n, 1.0)


def dot_kernel(A: np.ndarray, B: np.ndarray, zeta: int) -> np.ndarray:
    """Reference normalised dot-product kernel (a.b / |a||b|)^zeta, with k(0, 0) = 1 and
    k(0, b) = 0 for b != 0 (written independently of the package)."""
    ua, ub = unit_rows(A), unit_rows(B)
    K = np.einsum("ik,jk->ij", ua, ub) ** zeta
    za = ~np.any(A != 0, axis=1)
    zb = ~np.any(B != 0, axis=1)
    K[np.outer(za, zb)] = 1.0
    return K


def power_spectrum_like(rng: np.random.Generator, n: int, d: int = 12) -> np.ndarray:
    """Rows of mixed sign with a dominant positive direction and varied lengths, like SOAP
    power spectra (the dot-product kernel only sees their directions)."""
    X = rng.normal(size=(n, d)) + 2.0 * np.linspace(1.0, 0.2, d)
    return X * rng.uniform(0.5, 3.0, size=(n, 1))


def direction_target(X: np.ndarray) -> np.ndarray:
    U = unit_rows(X)
    return np.sin(3.0 * U[:, 0]) + 2.0 * U[:, 1] * U[:, 2] - U[:, 3] ** 2


@pytest.mark.parametrize("zeta", [1, 2, 3])
def test_dot_product_equals_exact_krr_with_all_points(zeta: int) -> None:
    rng = np.random.default_rng(20)
    X = power_spectrum_like(rng, 160)
    y = direction_target(X) + 0.05 * rng.normal(size=len(X))
    eps = 1e-3
    model = NystromKernelRidge(len(X), 1.0, eps, tol=0.0, kernel="dot_product", zeta=zeta).fit(X, y)
    assert not model.standardize_features and model.normalize_features
    np.testing.assert_array_equal(model.x_mean_, 0.0)  # no centring for a dot-product kernel
    # closed-form kernel ridge on the explicit kernel, standardised targets
    mu, sd = y.mean(), y.std()
    alpha = np.linalg.solve(dot_kernel(X, X, zeta) + eps * np.eye(len(X)), (y - mu) / sd)
    Xt = power_spectrum_like(rng, 60)
    ref = dot_kernel(Xt, X, zeta) @ alpha * sd + mu
    if zeta == 1:  # rank 12 < 160: the pivoted Cholesky stops early, and Nyström is still exact
        assert model.n_inducing_ == 12
    np.testing.assert_allclose(model.predict(Xt), ref, rtol=1e-7, atol=1e-7)
    # training residual: the pivots reproduce K exactly, so r ~ 0 everywhere
    assert np.all(model.train_residual_ < 1e-8)


def test_dot_product_standardised_features_reference() -> None:
    rng = np.random.default_rng(21)
    X = power_spectrum_like(rng, 120, d=6) * np.array([1e-3, 1.0, 10.0, 1.0, 5.0, 0.1])
    y = direction_target(X)
    eps, zeta = 1e-2, 2
    model = NystromKernelRidge(500, 1.0, eps, tol=0.0, kernel="dot_product", zeta=zeta,
                               standardize_features=True).fit(X, y)
    std = X.std(axis=0)  # per-feature scale, no centring, then unit rows
    Xt = power_spectrum_like(rng, 30, d=6)
    np.testing.assert_allclose(model.transform(Xt), unit_rows(Xt / std), atol=1e-12)
    mu, sd = y.mean(), y.std()
    alpha = np.linalg.solve(dot_kernel(X / std, X / std, zeta) + eps * np.eye(len(X)), (y - mu) / sd)
    ref = dot_kernel(Xt / std, X / std, zeta) @ alpha * sd + mu
    np.testing.assert_allclose(model.predict(Xt), ref, rtol=1e-7, atol=1e-7)


def test_dot_product_lssvr_equations_ood_and_invariances() -> None:
    rng = np.random.default_rng(22)
    X = power_spectrum_like(rng, 500, d=10)
    y = direction_target(X) + 0.02 * rng.normal(size=len(X))
    eps, zeta = 1e-3, 3
    model = NystromKernelRidge(60, 1.0, eps, tol=0.0, kernel="dot_product", zeta=zeta).fit(X, y)
    assert model.n_inducing_ == 60
    Z = X[model.inducing_indices_]
    Kxz, Kzz = dot_kernel(X, Z, zeta), dot_kernel(Z, Z, zeta)
    mu, sd = y.mean(), y.std()
    A = Kxz.T @ Kxz + eps * Kzz
    b = Kxz.T @ ((y - mu) / sd)
    w = model.weights_[:, 0]
    assert np.linalg.norm(A @ w - b) < 1e-8 * np.linalg.norm(b)
    Xt = power_spectrum_like(rng, 40, d=10)
    np.testing.assert_allclose(model.predict(Xt), dot_kernel(Xt, Z, zeta) @ w * sd + mu, atol=1e-9)
    # only directions count: rescaling rows changes nothing
    lengths = rng.uniform(1e-3, 1e3, size=(40, 1))
    np.testing.assert_allclose(model.predict(Xt * lengths), model.predict(Xt), atol=1e-9)
    # Nyström residual r = 1 - k_xZ K_ZZ^-1 k_Zx in [0, 1]: near 0 on the data, 1 for a
    # direction orthogonal to every training row, and for an all-zero row
    Kt = dot_kernel(Xt, Z, zeta)
    ref = 1.0 - np.einsum("ij,ji->i", Kt, np.linalg.solve(Kzz, Kt.T))
    np.testing.assert_allclose(model.out_of_domain(Xt), ref, atol=1e-6)
    np.testing.assert_allclose(model.out_of_domain(X), model.train_residual_, atol=1e-9)
    assert np.all(model.out_of_domain(X)[model.inducing_indices_] < 1e-9)
    far = np.zeros((2, 10))
    far[0, :] = np.linalg.svd(X)[2][-1]  # least-represented direction (still some overlap)
    r_far = model.out_of_domain(far)
    assert r_far[1] == pytest.approx(1.0)  # zero row
    assert model.predict(far)[1] == pytest.approx(mu)
    assert np.all((r_far >= 0) & (r_far <= 1)) and r_far[0] > ref.mean()


def test_dot_product_zero_rows_in_training() -> None:
    rng = np.random.default_rng(23)
    X = power_spectrum_like(rng, 100, d=5)
    X[[3, 50, 77]] = 0.0  # centres without neighbours
    y = direction_target(np.where(np.any(X != 0, axis=1, keepdims=True), X, 1.0))
    model = NystromKernelRidge(100, 1.0, 1e-3, tol=0.0, kernel="dot_product", zeta=2).fit(X, y)
    mu, sd = y.mean(), y.std()
    alpha = np.linalg.solve(dot_kernel(X, X, 2) + 1e-3 * np.eye(len(X)), (y - mu) / sd)
    Xt = np.vstack([power_spectrum_like(rng, 10, d=5), np.zeros((1, 5))])
    np.testing.assert_allclose(model.predict(Xt), dot_kernel(Xt, X, 2) @ alpha * sd + mu, rtol=1e-7, atol=1e-7)
    assert model.out_of_domain(np.zeros((1, 5)))[0] < 1e-9  # zero rows were trained on


def test_dot_product_pivoted_cholesky_matches_textbook() -> None:
    rng = np.random.default_rng(24)
    U = unit_rows(power_spectrum_like(rng, 250, d=8))
    K = dot_kernel(U, U, 4)
    ref_piv, ref_L, ref_d = naive_pivoted_cholesky(K, 80)
    exact = pivoted_cholesky(U, 1.0, 80, block_size=1, kernel="dot_product", zeta=4)
    np.testing.assert_array_equal(exact.pivots, ref_piv)
    np.testing.assert_allclose(exact.factor, ref_L, atol=1e-10)
    np.testing.assert_allclose(exact.residual, ref_d, atol=1e-10)
    blocked = pivoted_cholesky(U, 1.0, 80, block_size=16, pool_factor=3, kernel="dot_product", zeta=4)
    L, piv = blocked.factor, blocked.pivots
    np.testing.assert_allclose(L @ L[piv].T, K[:, piv], atol=1e-10)
    np.testing.assert_allclose(blocked.residual, np.diag(K - L @ L.T), atol=1e-10)
    with pytest.raises(ValueError, match="unit length"):
        pivoted_cholesky(2.0 * U, 1.0, 10, kernel="dot_product")


def test_dot_product_round_trip_set_ridge_and_bad_options() -> None:
    rng = np.random.default_rng(25)
    X = power_spectrum_like(rng, 300, d=7)
    Y = np.column_stack([direction_target(X), 400.0 + 10.0 * unit_rows(X)[:, 4]])
    Xt = power_spectrum_like(rng, 25, d=7)
    model = NystromKernelRidge(80, 1.0, 1e-3, kernel="dot_product", zeta=2).fit(X, Y)
    refit = NystromKernelRidge(80, 1.0, 1e-1, kernel="dot_product", zeta=2).fit(X, Y)
    np.testing.assert_allclose(model.set_ridge(1e-1).predict(Xt), refit.predict(Xt), rtol=1e-9, atol=1e-9)
    arrays, params = model.to_arrays()
    params = json.loads(json.dumps(params))
    assert params["kernel"] == "dot_product" and params["zeta"] == 2
    loaded = NystromKernelRidge.from_arrays(arrays, params)
    np.testing.assert_array_equal(loaded.predict(Xt), model.predict(Xt))
    np.testing.assert_array_equal(loaded.out_of_domain(Xt), model.out_of_domain(Xt))
    # parameters written before the kernel option existed still load as Gaussian
    gauss = NystromKernelRidge(80, 1.0, 1e-3).fit(X, Y[:, 0])
    g_arrays, g_params = gauss.to_arrays()
    old = {k: v for k, v in g_params.items() if k not in ("kernel", "zeta")}
    np.testing.assert_array_equal(NystromKernelRidge.from_arrays(g_arrays, old).predict(Xt), gauss.predict(Xt))
    assert gauss.get_params()["standardize_features"] is True  # Gaussian default unchanged
    for bad in ({"kernel": "laplacian"}, {"kernel": "dot_product", "zeta": 0},
                {"kernel": "dot_product", "zeta": 1.5}):
        with pytest.raises(ValueError):
            NystromKernelRidge(10, 1.0, 1e-3, **bad)


def test_build_regressor_passes_the_kernel_through_and_model_files_keep_it(tmp_path) -> None:
    from ase_mlnmr.nmr_model import NMRModel
    from ase_mlnmr.training.fitting import build_regressor
    from synthetic_data import synthetic_dataset

    features = power_spectrum_like(np.random.default_rng(26), 50)
    dot = build_regressor("ms_iso", {"ms_iso": {"kernel": "dot_product", "zeta": 3, "n_inducing": 40,
                                                "ridge": 1e-2}}, features)
    assert (dot.kernel, dot.zeta, dot.n_inducing, dot.ridge) == ("dot_product", 3, 40, 1e-2)
    assert not dot.standardize_features
    gauss = build_regressor("ms_iso", {"ms_iso": {"length_scale": 2.5}}, features)
    assert (gauss.kernel, gauss.length_scale, gauss.standardize_features) == ("gaussian", 2.5, True)
    raw = build_regressor("ms_iso", {"ms_iso": {"standardize_features": False, "length_scale_factor": 2.0}},
                          features)
    i, j = np.random.default_rng(0).integers(0, 50, size=(2, 2500))
    d = np.linalg.norm(features[i] - features[j], axis=1)
    assert raw.length_scale == pytest.approx(2.0 * np.median(d[d > 0]))
    assert not raw.standardize_features

    data = synthetic_dataset(n_structures=6, n_atoms=20, seed=1)
    config = {"species": {"Si": {"properties": ["ms_iso"]}},
              "descriptor": {"r_cut": 4.0, "n_max": 3, "l_max": 2, "sigma": 0.5},
              "ms_iso": {"kernel": "dot_product", "zeta": 2, "ridge": 1e-3, "n_inducing": 30}}
    model = NMRModel.train(data, config, progress=False, structure_indices=range(5))
    regressor = model.models[("Si", "ms_iso")].regressor
    assert regressor.kernel == "dot_product" and regressor.n_inducing_ <= 30
    loaded = NMRModel.load(model.save(tmp_path / "dot.npz"))
    atoms = data.structures[5]
    first, second = model.predict(atoms, unknown_species="skip"), loaded.predict(atoms, unknown_species="skip")
    np.testing.assert_array_equal(first.ms_iso, second.ms_iso)
    np.testing.assert_array_equal(first.ood, second.ood)
    assert np.all((second.ood[second.ood_mask] >= 0) & (second.ood[second.ood_mask] <= 1))
