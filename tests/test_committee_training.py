"""Equivariant committee training with the member Grams built together
(``member_normal_equations``): every member's weights equal an independent ridge solve on
its own rows (NumPy, normal equations of that member alone), for a feature count spanning
several column blocks and in the dual regime (more features than a member's rows)."""
from __future__ import annotations

import numpy as np
import pytest

from ase_mlnmr.models import linear
from ase_mlnmr.models.committee import CommitteeSettings, committee_design
from ase_mlnmr.models.linear import EquivariantRidge, member_normal_equations


def _problem(n_atoms: int, p: int, seed: int):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_atoms, 5, p)) * rng.uniform(0.2, 3.0, size=p)
    y = X @ rng.normal(size=p) / np.sqrt(p) + 0.1 * rng.normal(size=(n_atoms, 5))
    groups = rng.integers(0, 15, size=n_atoms)
    rows = committee_design(groups, CommitteeSettings(size=8, fraction=0.5, seed=seed))
    return X, y, rows


def _independent_member_weights(X, y, rows, alpha, scale, target_scale):
    p = X.shape[2]
    out = []
    for r in rows:
        A = (X[r] / scale).reshape(-1, p)
        out.append(np.linalg.solve(A.T @ A + alpha * np.eye(p), A.T @ (y[r] / target_scale).reshape(-1)))
    return np.array(out)


@pytest.mark.parametrize("n_atoms, p", [(320, 2 * linear.MEMBER_GRAM_BLOCK + 37), (30, 90)])
def test_members_equal_independent_ridge_solves(n_atoms, p):
    X, y, rows = _problem(n_atoms, p, seed=p)
    alpha = 1e-2
    model = EquivariantRidge(alpha=alpha).fit(X, y).fit_members(X, y, rows)
    assert (p <= 5 * rows.sum(axis=1).min()) == (n_atoms == 320)   # primal (Grams together), then dual
    raw = _independent_member_weights(X, y, rows, alpha, model.feature_scale_, model.target_scale_)
    expected = model.scaled_weights_ + raw - raw.mean(axis=0)           # re-centred on the full model
    np.testing.assert_allclose(model.member_scaled_weights_, expected, rtol=0,
                               atol=1e-9 * np.abs(expected).max())


def test_member_normal_equations_equal_each_members_own_gram():
    rng = np.random.default_rng(5)
    n, p = 300, linear.MEMBER_GRAM_BLOCK + 11
    design, targets = rng.normal(size=(n, p)), rng.normal(size=n)
    member_rows = rng.random((6, n)) < 0.5
    grams, rhs = member_normal_equations(design, targets, member_rows)
    for gram, b, rows in zip(grams, rhs, member_rows):
        np.testing.assert_allclose(gram, design[rows].T @ design[rows], rtol=0, atol=1e-11 * n)
        np.testing.assert_allclose(b, design[rows].T @ targets[rows], rtol=0, atol=1e-11 * n)


@pytest.mark.parametrize("n_atoms, p", [(320, linear.MEMBER_GRAM_BLOCK + 5), (30, 90)])
def test_fit_with_member_rows_equals_fit_then_fit_members(n_atoms, p):
    """One call (the full model's Gram built with the members') = fit, then fit_members;
    the full weights equal an independent solve of all rows."""
    X, y, rows = _problem(n_atoms, p, seed=p + 1)
    together = EquivariantRidge(alpha=1e-2).fit(X, y, member_rows=rows)
    apart = EquivariantRidge(alpha=1e-2).fit(X, y).fit_members(X, y, rows)
    full = _independent_member_weights(X, y, np.ones((1, n_atoms), bool), 1e-2, apart.feature_scale_,
                                       apart.target_scale_)[0]
    scale = np.abs(full).max()
    np.testing.assert_allclose(together.scaled_weights_, full, rtol=0, atol=1e-9 * scale)
    np.testing.assert_allclose(together.member_scaled_weights_, apart.member_scaled_weights_, rtol=0,
                               atol=1e-9 * scale)
    assert together.calibration_ == pytest.approx(apart.calibration_, rel=1e-8)


@pytest.mark.parametrize("lam, grouped_rows", [(2, False), (2, True), (1, False)])
def test_fit_with_member_rows_equals_slow_numpy_ridge_of_every_member(lam, grouped_rows):
    """Every member (and the full model) of ``fit(..., member_rows=...)`` equals
    np.linalg.solve(X_kᵀX_k + αI, X_kᵀy_k) on its own scaled rows to 1e-10 relative, with
    the groups scattered over the atoms or in contiguous runs (the fit sorts the atoms by
    member cell first), for λ = 2 (EFG, σ(2)) and λ = 1 (σ(1))."""
    d = 2 * lam + 1
    rng = np.random.default_rng(40 + lam)
    n_atoms, p = 480, 2 * linear.MEMBER_GRAM_BLOCK + 21
    X = rng.normal(size=(n_atoms, d, p)) * rng.uniform(0.2, 3.0, size=p)
    y = X @ rng.normal(size=p) / np.sqrt(p) + 0.1 * rng.normal(size=(n_atoms, d))
    groups = rng.integers(0, 12, size=n_atoms)
    if grouped_rows:
        groups = np.sort(groups)
    rows = committee_design(groups, CommitteeSettings(size=8, fraction=0.5, seed=3))
    alpha = 1e-2
    model = EquivariantRidge(lam=lam, alpha=alpha).fit(X, y, member_rows=rows)
    assert p <= d * rows.sum(axis=1).min()                              # primal: Grams built together
    s, ts = model.feature_scale_, model.target_scale_
    np.testing.assert_allclose(s, np.sqrt(np.mean(X**2, axis=(0, 1))), rtol=1e-12)
    full = _independent_member_weights(X, y, np.ones((1, n_atoms), bool), alpha, s, ts)[0]
    members = _independent_member_weights(X, y, rows, alpha, s, ts)
    expected = full + members - members.mean(axis=0)                    # re-centred on the full model
    assert np.linalg.norm(model.scaled_weights_ - full) <= 1e-10 * np.linalg.norm(full)
    for got, want in zip(model.member_scaled_weights_, expected):
        assert np.linalg.norm(got - want) <= 1e-10 * np.linalg.norm(want)


def test_solve_ridge_keeps_or_uses_the_gram_and_falls_back_to_least_squares():
    """Cholesky on the upper triangle, in place only when asked; a matrix that is not
    positive definite (even after the shift) gives the least-squares solution of G + αI
    rebuilt from the lower triangle the factorisation did not touch."""
    rng = np.random.default_rng(9)
    design = rng.normal(size=(80, 30))
    gram, rhs, alpha = design.T @ design, rng.normal(size=30), 0.5
    reference = np.linalg.solve(gram + alpha * np.eye(30), rhs)
    kept = gram.copy()
    np.testing.assert_allclose(linear.solve_ridge(kept, rhs, alpha), reference, rtol=1e-12)
    np.testing.assert_array_equal(kept, gram)                           # default: the Gram is left alone
    used = gram.copy()
    np.testing.assert_allclose(linear.solve_ridge(used, rhs, alpha, overwrite_gram=True), reference, rtol=1e-12)
    assert not np.array_equal(used, gram)                               # the factor was written in place
    indefinite = gram - 2.0 * np.linalg.eigvalsh(gram).mean() * np.eye(30)
    expected = np.linalg.lstsq(indefinite + alpha * np.eye(30), rhs, rcond=None)[0]
    for overwrite in (False, True):
        got = linear.solve_ridge(indefinite.copy(), rhs, alpha, overwrite_gram=overwrite)
        np.testing.assert_allclose(got, expected, rtol=1e-9)
