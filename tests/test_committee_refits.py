"""The calibration's refits of the full model ("power", "power_eiv"), fitted together with the
members (shared Gram pass over the rows, or one kernel matrix, for the equivariant ridge;
shared Gram pass over the rows of the Nyström factor), equal a ridge fitted from scratch on the
refit's rows (slow NumPy solve)."""
from __future__ import annotations

import numpy as np
import pytest

from ase_mlnmr.models import linear, nystrom
from ase_mlnmr.models.committee import CommitteeSettings, calibration_fit_rows, calibration_folds, committee_design
from ase_mlnmr.models.linear import EquivariantRidge
from ase_mlnmr.models.nystrom import NystromKernelRidge

from test_committee import _regression_data


def _recording(module, monkeypatch) -> list:
    """Replace ``module.fit_calibration`` by a wrapper that records (rows, refit predictions) of every refit."""
    calls: list = []
    real = module.fit_calibration

    def wrapper(method, predictions, targets, seen, refit_predict):
        calls.append([(rows, np.array(refit_predict(rows))) for rows in calibration_fit_rows(method, seen)])
        return real(method, predictions, targets, seen, refit_predict)

    monkeypatch.setattr(module, "fit_calibration", wrapper)
    return calls


def test_fit_rows_are_the_complements_of_the_calibration_folds():
    rows = committee_design(np.repeat(np.arange(15), 3), CommitteeSettings(size=8, fraction=0.5, seed=1))
    folds = calibration_folds(rows)
    fit_rows = calibration_fit_rows("power_eiv", rows)
    assert fit_rows.shape == (5, rows.shape[1])
    np.testing.assert_array_equal(fit_rows.sum(axis=0), 4)            # every row left out once
    for fold, fit in zip(np.unique(folds), fit_rows):
        np.testing.assert_array_equal(fit, folds != fold)
    assert calibration_fit_rows("scale", rows).shape == (0, rows.shape[1])
    with pytest.raises(ValueError, match="calibration must be one of"):
        calibration_fit_rows("isotonic", rows)


@pytest.mark.parametrize("n_atoms, p, with_full", [(320, linear.MEMBER_GRAM_BLOCK + 5, True),   # primal
                                                    (320, linear.MEMBER_GRAM_BLOCK + 5, False),
                                                    (40, 300, True), (40, 300, False),        # dual
                                                    (60, 200, True), (60, 200, False)])       # in between
def test_equivariant_refits_equal_independent_ridge_solves(n_atoms, p, with_full, monkeypatch):
    rng = np.random.default_rng(p + n_atoms)
    X = rng.normal(size=(n_atoms, 5, p))
    y = np.einsum("nmp,p->nm", X, rng.normal(size=p) / np.sqrt(p)) + 0.1 * rng.normal(size=(n_atoms, 5))
    groups = np.repeat(np.arange(n_atoms // 4), 4)
    rows = committee_design(groups, CommitteeSettings(size=8, fraction=0.5, seed=3))
    alpha = 1e-2
    calls = _recording(linear, monkeypatch)
    if with_full:
        model = EquivariantRidge(alpha=alpha).fit(X, y, member_rows=rows, calibration="power")
    else:
        model = EquivariantRidge(alpha=alpha).fit(X, y).fit_members(X, y, rows, calibration="power")
    assert (p <= 5 * rows.sum(axis=1).min()) == (n_atoms == 320) and (p >= 5 * n_atoms) == (n_atoms == 40)
    (refits,) = calls
    assert len(refits) == 5
    order = np.argsort(np.unique(rows.T, axis=0, return_inverse=True)[1].ravel(), kind="stable")
    Xs, ys = X[order] / model.feature_scale_, y[order] / model.target_scale_   # the model's row order
    for fit, predicted in refits:
        A = Xs[fit].reshape(-1, p)
        w = np.linalg.solve(A.T @ A + alpha * np.eye(p), A.T @ ys[fit].reshape(-1))
        expected = np.einsum("nmp,p->nm", Xs, w) * model.target_scale_
        np.testing.assert_allclose(predicted, expected, rtol=0, atol=1e-9 * np.abs(expected).max())


@pytest.mark.parametrize("calibration", ["power", "power_eiv"])
def test_nystrom_refits_equal_independent_solves(calibration, monkeypatch):
    X, y, groups = _regression_data(n_groups=30, per_group=6, seed=5)
    rows = committee_design(groups, CommitteeSettings(size=8, fraction=0.5, seed=4))
    factors: list = []
    real_fit_members = NystromKernelRidge._fit_members

    def record_factor(self, L, *args):
        factors.append(np.array(L))
        return real_fit_members(self, L, *args)

    monkeypatch.setattr(NystromKernelRidge, "_fit_members", record_factor)
    calls = _recording(nystrom, monkeypatch)
    ridge = 1e-3
    model = NystromKernelRidge(n_inducing=30, length_scale=2.0, ridge=ridge).fit(X, y, member_rows=rows,
                                                                                calibration=calibration)
    (L,), (refits,) = factors, calls
    assert len(refits) == 5
    ys = (y - y.mean()) / y.std()
    for fit, predicted in refits:
        Lr = L[fit]
        beta = np.linalg.solve(Lr.T @ Lr + max(ridge, nystrom.PIVOT_FLOOR) * np.eye(L.shape[1]), Lr.T @ ys[fit])
        expected = L @ beta * y.std() + y.mean()
        np.testing.assert_allclose(predicted.ravel(), expected, rtol=0, atol=1e-9 * np.abs(expected).max())
    assert model.calibration_constant_sigma_ > 0


def test_symmetric_kernel_is_the_full_gram_of_the_rows():
    design = np.random.default_rng(0).normal(size=(2 * linear.MEMBER_GRAM_BLOCK + 7, 40))
    np.testing.assert_allclose(linear._symmetric_kernel(design), design @ design.T, rtol=0, atol=1e-12 * 40)
