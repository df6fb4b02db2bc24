"""Tests of folds, metrics, cross-validation, grid search and learning curves."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ase_mlnmr.training.model_selection import (
    cross_validate,
    fold_assignment,
    grid_search,
    kfold_splits,
    learning_curve,
    nested_cross_validate,
    regression_metrics,
    tensor_metrics,
)


def test_plain_folds_partition_the_samples() -> None:
    n = 23
    folds = fold_assignment(n, 5, seed=1)
    sizes = np.bincount(folds, minlength=5)
    assert sizes.sum() == n and sizes.max() - sizes.min() <= 1
    np.testing.assert_array_equal(fold_assignment(n, 5, seed=1), folds)
    assert not np.array_equal(fold_assignment(n, 5, seed=2), folds)
    splits = kfold_splits(n, 5, seed=1)
    tested = np.concatenate([te for _, te in splits])
    assert sorted(tested.tolist()) == list(range(n))
    for train, test in splits:
        assert np.intersect1d(train, test).size == 0 and train.size + test.size == n
    with pytest.raises(ValueError):
        fold_assignment(3, 5)


def test_grouped_folds_never_split_a_group() -> None:
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 30, size=200)
    for seed in range(4):
        folds = fold_assignment(200, 5, groups=groups, seed=seed)
        for g in np.unique(groups):
            assert np.unique(folds[groups == g]).size == 1
        sizes = np.bincount(folds, minlength=5)
        assert sizes.min() > 0 and sizes.max() < 2.0 * sizes.min()
    assert not np.array_equal(fold_assignment(200, 5, groups=groups, seed=0), fold_assignment(200, 5, groups=groups, seed=1))
    # string labels work too
    labels = np.array(["a", "b", "c", "a", "b", "c", "d"])
    f = fold_assignment(7, 2, groups=labels, seed=0)
    assert f[0] == f[3] and f[1] == f[4] and f[2] == f[5]
    with pytest.raises(ValueError):
        fold_assignment(7, 5, groups=labels)


def test_explicit_folds() -> None:
    fold_ids = np.array([2, 0, 1, 0, 2, 1, 1])
    splits = kfold_splits(7, folds=fold_ids)
    assert [te.tolist() for _, te in splits] == [[1, 3], [2, 5, 6], [0, 4]]
    with pytest.raises(ValueError, match="split group"):
        kfold_splits(7, folds=fold_ids, groups=np.array([0, 0, 1, 1, 2, 2, 3]))


def test_regression_metrics_by_hand() -> None:
    y = np.array([1.0, 2.0, 3.0, 4.0])
    f = np.array([1.5, 2.0, 2.0, 5.0])
    m = regression_metrics(y, f)["y"]
    # errors 0.5, 0, -1, 1: MAE = 2.5/4, RMSE = sqrt(2.25/4) = 0.75, std(y) = sqrt(1.25)
    assert m["MAE"] == pytest.approx(0.625)
    assert m["RMSE"] == pytest.approx(0.75)
    assert m["%RMSE"] == pytest.approx(100 * 0.75 / math.sqrt(1.25))
    two = regression_metrics(np.column_stack([y, 2 * y]), np.column_stack([f, 2 * y]), names=["a", "b"])
    assert two["a"]["RMSE"] == pytest.approx(0.75) and two["b"]["RMSE"] == 0.0
    assert math.isnan(regression_metrics(np.ones(3), np.zeros(3))["y"]["%RMSE"])
    with pytest.raises(ValueError):
        regression_metrics(y, f[:3])


def test_tensor_metrics_by_hand() -> None:
    y = np.zeros((2, 3, 3))
    y[1] = np.eye(3)
    f = y.copy()
    f[0, 0, 1] = 3.0
    f[0, 1, 0] = 4.0  # |e_0| = 5, |e_1| = 0
    m = tensor_metrics(y, f)["tensor"]
    assert m["MAE"] == pytest.approx(2.5)
    assert m["RMSE"] == pytest.approx(math.sqrt(12.5))
    # mean tensor eye/2; |y_i - mean|^2 = 3/4 for both samples
    assert m["%RMSE"] == pytest.approx(100 * math.sqrt(12.5) / math.sqrt(0.75))


def test_cross_validate_mean_predictor_known_answer() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(size=40) * 3 + 1
    groups = np.repeat(np.arange(10), 4)
    calls = []

    def fit_predict(train, test, shift=0.0):
        calls.append((train.copy(), test.copy()))
        return np.full(test.size, y[train].mean() + shift)

    res = cross_validate(fit_predict, y, n_splits=5, n_repeats=2, seed=7, groups=groups)
    assert len(calls) == 10 and len(res.folds) == 10
    for train, test in calls:
        assert np.intersect1d(groups[train], groups[test]).size == 0
    for r in range(2):
        tested = np.concatenate([te for _, te in calls[5 * r : 5 * r + 5]])
        assert sorted(tested.tolist()) == list(range(40))
    # per-fold metrics equal the hand formula for the train-mean predictor
    rmses = []
    for rec, (train, test) in zip(res.folds, calls):
        err = y[train].mean() - y[test]
        assert rec["metrics"]["y"]["RMSE"] == pytest.approx(np.sqrt(np.mean(err**2)))
        assert rec["metrics"]["y"]["MAE"] == pytest.approx(np.mean(np.abs(err)))
        rmses.append(np.sqrt(np.mean(err**2)))
    assert res.mean["y"]["RMSE"] == pytest.approx(np.mean(rmses))
    assert res.std["y"]["RMSE"] == pytest.approx(np.std(rmses, ddof=1))
    # pooled = metrics of all out-of-fold predictions of a repeat
    for r in range(2):
        pooled_err = res.predictions[r] - y
        assert res.pooled[r]["y"]["RMSE"] == pytest.approx(np.sqrt(np.mean(pooled_err**2)))
    assert res.predictions.shape == (2, 40)
    json.dumps(res.to_dict())
    # the two repeats use different partitions
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(calls[:5], calls[5:]))


def test_cross_validate_tensor_targets_and_bad_shapes() -> None:
    rng = np.random.default_rng(4)
    y = rng.normal(size=(25, 3, 3))

    def exact(train, test):
        return y[test] + 0.1

    res = cross_validate(exact, y, metric=tensor_metrics)
    assert res.mean["tensor"]["RMSE"] == pytest.approx(0.3)  # |0.1 * ones(3,3)| = 0.3
    per_component = cross_validate(exact, y)
    assert len(per_component.mean) == 9
    assert all(v["RMSE"] == pytest.approx(0.1) for v in per_component.mean.values())
    with pytest.raises(ValueError, match="shape"):
        cross_validate(lambda tr, te: np.zeros(te.size + 1), y[:, 0, 0])


def test_grid_search_known_optimum() -> None:
    y = np.linspace(0.0, 1.0, 30)

    def fit_predict(train, test, offset, scale):
        return y[test] * scale + offset

    out = grid_search(fit_predict, y, {"offset": [0.3, -0.1, 0.2], "scale": [1.0, 2.0]}, n_splits=3)
    assert out.best_params == {"offset": -0.1, "scale": 1.0}
    assert out.best_score == pytest.approx(0.1)
    assert len(out.results) == 6 and len(out.table()) == 6
    mae = grid_search(fit_predict, y, {"offset": [0.3, -0.2], "scale": [1.0]}, score="MAE", n_splits=3)
    assert mae.best_params["offset"] == -0.2 and mae.best_score == pytest.approx(0.2)


def test_nested_cv_uses_only_outer_training_data() -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(60, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.01 * rng.normal(size=60)
    groups = np.repeat(np.arange(20), 3)
    outer_tests = []

    def ridge(train, test, alpha):
        A = X[train]
        w = np.linalg.solve(A.T @ A + alpha * np.eye(3), A.T @ y[train])
        outer_tests.append(test)
        return X[test] @ w

    res = nested_cross_validate(ridge, y, {"alpha": [1e-6, 1e3]}, n_splits=4, groups=groups)
    assert len(res.folds) == 4
    assert all(rec["params"] == {"alpha": 1e-6} for rec in res.folds)
    assert res.mean["y"]["RMSE"] < 0.05
    assert sorted(np.concatenate([te for _, te in kfold_splits(60, 4, groups=groups, seed=0)]).tolist()) == list(range(60))


def test_nested_cv_inner_calls_never_see_outer_test() -> None:
    y = np.arange(30, dtype=float)
    seen: list[tuple[np.ndarray, np.ndarray]] = []

    def fit_predict(train, test, c):
        seen.append((train, test))
        return y[test] + c

    res = nested_cross_validate(fit_predict, y, {"c": [1.0, 0.5]}, n_splits=3, inner_splits=2)
    outer = kfold_splits(30, 3, seed=0)
    # calls: per outer fold 2 params x 2 inner folds, then the refit
    per_fold = 2 * 2 + 1
    assert len(seen) == 3 * per_fold
    for k, (otrain, otest) in enumerate(outer):
        block = seen[k * per_fold : (k + 1) * per_fold]
        for train, test in block[:-1]:
            assert np.isin(train, otrain).all() and np.isin(test, otrain).all()
        np.testing.assert_array_equal(block[-1][1], otest)
    assert all(rec["params"] == {"c": 0.5} for rec in res.folds)


def test_learning_curve() -> None:
    rng = np.random.default_rng(6)
    X = rng.normal(size=(200, 8))
    y = X @ rng.normal(size=8) + 0.3 * rng.normal(size=200)
    groups = np.repeat(np.arange(50), 4)
    sizes: list[int] = []

    def ols(train, test):
        sizes.append(train.size)
        assert np.intersect1d(groups[train], groups[test]).size == 0
        for g in np.unique(groups[train]):  # whole groups only
            assert np.sum(groups[train] == g) == 4
        w = np.linalg.lstsq(X[train], y[train], rcond=None)[0]
        return X[test] @ w

    fr = (0.1, 0.3, 1.0)
    lc = learning_curve(ols, y, fr, n_splits=5, groups=groups, seed=2)
    n_train, mean, std = lc.curve("RMSE")
    # 40 training groups per fold: round(f * 40) groups of 4 samples
    np.testing.assert_allclose(n_train, [16, 48, 160])
    assert mean[0] > mean[1] > mean[2]
    assert mean[2] < 0.45  # close to the 0.3 noise level with all training data
    assert len(lc.folds) == 15
    json.dumps(lc.to_dict())
    seen: list[np.ndarray] = []

    def mean_model(train, test):
        seen.append(train)
        return np.full(test.size, y[train].mean())

    plain = learning_curve(mean_model, y, (0.5, 1.0), n_splits=4, seed=0)
    assert plain.n_train.tolist() == [75.0, 150.0]  # 150 training samples per fold
    for half, full in zip(seen[0::2], seen[1::2]):
        assert np.isin(half, full).all()  # nested subsets of the training fold
    with pytest.raises(ValueError):
        learning_curve(ols, y, (0.0, 1.0))
