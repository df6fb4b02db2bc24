"""Equivariant committee training with the member Grams built together
(``member_normal_equations``): every member's weights equal an independent ridge solve on
its own rows (NumPy, normal equations of that member alone), for a feature count spanning
several column blocks and in the dual regime (more features than a member's rows)."""
from __future__ import annotations

import numpy as np
import pytest

from ase_mlnmr.models import linear
from ase_mlnmr.models.committee import CommitteeSettings, committee_design
from ase_mlnmr.models.linear import EquivariantRidge, member_gram_batches, member_normal_equations, member_ridge_weights
from ase_mlnmr.models.nystrom import NystromKernelRidge


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


def test_member_gram_batches_cover_every_fit_once_within_the_memory():
    p = 100
    one_gram = 8 * p * p
    for n_fits, memory in [(13, 13 * one_gram), (13, 4 * one_gram), (13, one_gram // 2), (1, 1), (7, 100 * one_gram)]:
        batches = member_gram_batches(n_fits, p, memory)
        assert np.concatenate([np.arange(n_fits)[b] for b in batches]).tolist() == list(range(n_fits))
        sizes = [b.stop - b.start for b in batches]
        assert max(sizes) <= max(1, memory // one_gram) and max(sizes) - min(sizes) <= 1
        assert len(batches) == -(-n_fits // max(1, memory // one_gram))     # no more passes than needed


@pytest.mark.parametrize("memory_in_grams", [100, 3])
def test_member_ridge_weights_equal_numpy_solves_in_one_or_several_passes(memory_in_grams, monkeypatch):
    """Fits in one pass or in several (a memory of 3 Grams: 5 passes for 13 fits), rows not
    sorted by cell (short runs: gathered) and two target columns: each equals
    np.linalg.solve(X_Sᵀ X_S + αI, X_Sᵀ Y_S) on its own rows."""
    rng = np.random.default_rng(11)
    n, p, alpha = 400, linear.MEMBER_GRAM_BLOCK + 30, 0.3
    design, targets = rng.normal(size=(n, p)), rng.normal(size=(n, 2))
    fits = committee_design(rng.integers(0, 20, size=n), CommitteeSettings(size=13, fraction=0.6, seed=1))
    monkeypatch.setattr(linear, "MEMBER_GRAM_MEMORY", memory_in_grams * 8 * p * p)
    got = member_ridge_weights(design, targets, fits, alpha)
    assert got.shape == (13, p, 2)
    for weights, rows in zip(got, fits):
        X = design[rows]
        want = np.linalg.solve(X.T @ X + alpha * np.eye(p), X.T @ targets[rows])
        np.testing.assert_allclose(weights, want, rtol=0, atol=1e-10 * np.abs(want).max())


def test_nystrom_members_in_several_gram_passes_equal_one_pass(monkeypatch):
    """The Nyström committee with its member and refit Grams split over several passes (a
    memory of two Grams) equals the one-pass fit: same members, same calibration."""
    from test_committee import _regression_data

    X, y, groups = _regression_data(n_groups=30, per_group=6, seed=8)
    rows = committee_design(groups, CommitteeSettings(size=8, fraction=0.5, seed=2))
    settings = dict(n_inducing=40, length_scale=2.0, ridge=1e-3)
    one = NystromKernelRidge(**settings).fit(X, y, member_rows=rows, calibration="power_eiv")
    monkeypatch.setattr(linear, "MEMBER_GRAM_MEMORY", 2 * 8 * 40 * 40)
    several = NystromKernelRidge(**settings).fit(X, y, member_rows=rows, calibration="power_eiv")
    scale = np.abs(one.member_weights_).max()
    np.testing.assert_allclose(several.member_weights_, one.member_weights_, rtol=0, atol=1e-9 * scale)
    assert several.calibration_power_ == pytest.approx(one.calibration_power_, rel=1e-6, abs=1e-9)
    assert several.calibration_constant_sigma_ == pytest.approx(one.calibration_constant_sigma_, rel=1e-9)
