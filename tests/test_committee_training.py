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
