"""The nested grouped-CV scorer of equivariant ridges (training/nested_ridge.py) against a
slow NumPy loop that refits the ridge from the raw features for every pair of outer
folds, α and scaling; plus its α walk, staged search, result cache and bad input."""
from __future__ import annotations

import numpy as np
import pytest

from ase_mlnmr.core.spherical_tensors import L2_BASIS
from ase_mlnmr.training.nested_ridge import NestedRidgeCV, PairedFoldRidge
from ase_mlnmr.training.search_budget import Budget, BudgetExceeded, ResultCache

ALPHAS = [float(10.0 ** (e / 2)) for e in range(-8, 5)]
N_OUTER = 4


def _problem(n_atoms: int, p: int, seed: int, noise: float = 0.3):
    """Noisy linear λ = 2 problem with badly scaled columns; Cartesian reference tensors
    Σ_μ y_μ B_μ plus an isotropic part the model cannot see (it drops out of the
    traceless prediction but not of the diagonal component errors)."""
    rng = np.random.default_rng(seed)
    column_scale = 10.0 ** rng.uniform(-2, 1, size=p)
    features = rng.normal(size=(n_atoms, 5, p)) * column_scale
    weights = rng.normal(size=p) / column_scale * (rng.random(p) < 0.5)
    targets = features @ weights + noise * rng.normal(size=(n_atoms, 5))
    reference = np.einsum("nm,mij->nij", targets, L2_BASIS) + 0.1 * rng.normal(size=(n_atoms, 1, 1)) * np.eye(3)
    folds = np.arange(n_atoms) % N_OUTER
    return features, targets, folds, reference


def _slow_weights(features, targets, folds, train, columns, scaling, alpha):
    """Raw-feature weights from scratch: scale from the training rows, primal normal equations."""
    x = features[np.isin(folds, train)][:, :, columns].reshape(-1, features[:, :, columns].shape[2])
    y = targets[np.isin(folds, train)].reshape(-1)
    if scaling == "per_feature":
        s = np.sqrt(np.mean(x**2, axis=0))
    elif scaling == "global":
        s = np.full(x.shape[1], np.sqrt(np.mean(x**2)))
    else:
        s = np.ones(x.shape[1])
    xs = x / s
    return np.linalg.solve(xs.T @ xs + alpha * np.eye(x.shape[1]), xs.T @ y) / s


def _slow_inner_score(features, targets, folds, reference, outer, columns, scaling, alpha) -> float:
    """S_k = mean over j ≠ k of the six-component MAE on fold j of the ridge trained
    without folds {k, j}, the prediction mapped to Cartesian with the basis."""
    errors = []
    for j in range(N_OUTER):
        if j == outer:
            continue
        train = [f for f in range(N_OUTER) if f not in (outer, j)]
        w = _slow_weights(features, targets, folds, train, columns, scaling, alpha)
        predicted = np.einsum("nm,mij->nij", features[folds == j][:, :, columns] @ w, L2_BASIS)
        upper = np.triu_indices(3)
        errors.append(np.mean(np.abs(predicted[:, upper[0], upper[1]] - reference[folds == j][:, upper[0], upper[1]])))
    return float(np.mean(errors))


def _scorer(problems: dict, cache: ResultCache, budget: Budget | None = None, built: list | None = None):
    """A NestedRidgeCV over ready-made problems; feature setting {"n_columns": c} keeps the
    first c columns; variant "scale" in {"per_feature", "global"}."""
    def build(name: str, features: dict) -> PairedFoldRidge:
        if built is not None:
            built.append((name, features["n_columns"]))
        x, y, folds, reference = problems[name]
        return PairedFoldRidge(x[:, :, :features["n_columns"]], y, folds, reference, L2_BASIS)

    def split(setting):
        return {"n_columns": setting["n_columns"]}, {"scale": setting["scale"]}

    return NestedRidgeCV("inner_test", build, split, lambda features, variant: (slice(None), variant["scale"]),
                         ALPHAS, N_OUTER, cache, budget, log=lambda message: None)


@pytest.mark.parametrize("n_atoms, p", [(80, 10), (16, 60)], ids=["primal", "dual"])
@pytest.mark.parametrize("scaling", ["per_feature", "global", "none"])
def test_pair_weights_equal_a_ridge_refit_from_the_raw_features(n_atoms, p, scaling):
    features, targets, folds, reference = _problem(n_atoms, p, seed=n_atoms + p)
    problem = PairedFoldRidge(features, targets, folds, reference, L2_BASIS)
    for train, columns in (([0, 1], slice(None)), ([1, 3], slice(4, None))):
        expected = _slow_weights(features, targets, folds, train, columns, scaling, 1e-2)
        np.testing.assert_allclose(problem.weights(train, columns, scaling, 1e-2), expected, rtol=1e-7,
                                   atol=1e-9 * np.abs(expected).max())


@pytest.mark.parametrize("n_atoms, p", [(80, 10), (16, 60)], ids=["primal", "dual"])
def test_inner_scores_and_alpha_walk_equal_the_slow_nested_loop(n_atoms, p, tmp_path):
    features, targets, folds, reference = _problem(n_atoms, p, seed=3 * n_atoms + p)
    scorer = _scorer({"X": (features, targets, folds, reference)}, ResultCache(tmp_path))
    setting = {"n_columns": p, "scale": "per_feature"}
    for outer in range(N_OUTER):
        slow = [_slow_inner_score(features, targets, folds, reference, outer, slice(None), "per_feature", a)
                for a in ALPHAS]
        index, score, curve = scorer.walk("X", outer, setting, start=len(ALPHAS) // 2)
        for i, value in curve.items():  # every α the walk scored
            np.testing.assert_allclose(value, slow[i], rtol=1e-8)
        np.testing.assert_allclose(score, slow[index], rtol=1e-8)
        # a walk's end: no scored neighbour lower by more than min_gain (0.1 %)
        assert all(slow[j] >= slow[index] * (1 - 1e-3) for j in (index - 1, index + 1) if 0 <= j < len(ALPHAS))


def test_staged_search_picks_the_setting_the_slow_loop_ranks_first(tmp_path):
    problems = {name: _problem(60, 12, seed) for name, seed in (("A", 1), ("B", 2))}
    scorer = _scorer(problems, ResultCache(tmp_path))
    stages = [("n_columns", [6, 12]), ("scale", ["per_feature", "global"], ["B"])]
    chosen, history = scorer.search(["A", "B"], [0, 2], {"n_columns": 6, "scale": "per_feature"}, stages,
                                     alpha_start=6)
    for name, (x, y, folds, reference) in problems.items():
        scalings = ["per_feature", "global"] if name == "B" else ["per_feature"]
        for outer in (0, 2):
            pick = chosen[name][str(outer)]
            inner = {(c, s): min(_slow_inner_score(x[:, :, :c], y, folds, reference, outer, slice(None), s, a)
                                 for a in ALPHAS) for c in (6, 12) for s in scalings}
            best = min(inner, key=inner.get)
            assert (pick["setting"]["n_columns"], pick["setting"]["scale"]) == best
            setting = pick["setting"]
            np.testing.assert_allclose(pick["inner_mae"], _slow_inner_score(
                x[:, :, :setting["n_columns"]], y, folds, reference, outer, slice(None), setting["scale"], pick["alpha"]),
                rtol=1e-8)
            assert pick["inner_mae"] <= inner[best] * (1 + 1e-3)  # the walk stops within min_gain of the grid minimum
            assert pick["alpha"] in ALPHAS and not pick["alpha_at_grid_edge"]
            assert [h["stage"] for h in history[name][str(outer)]][0] == "start"


def test_cached_pair_errors_are_reused_and_an_exhausted_budget_stops_before_solving(tmp_path):
    features, targets, folds, reference = _problem(40, 8, seed=5)
    problems = {"X": (features, targets, folds, reference)}
    setting = {"n_columns": 8, "scale": "global"}
    built: list = []
    first = _scorer(problems, ResultCache(tmp_path), built=built)
    result = first.walk("X", 1, setting, start=4)
    assert built == [("X", 8)] and first.n_solves > 0
    again: list = []
    second = _scorer(problems, ResultCache(tmp_path), Budget(0.0), built=again)
    assert second.walk("X", 1, setting, start=4) == result  # from the files: no features, no solve
    assert again == [] and second.n_solves == 0
    assert second.tuning_seconds()["solves"] > 0  # the time the first run spent
    with pytest.raises(BudgetExceeded, match="inner-CV solve"):
        second.walk("X", 2, setting, start=4)  # outer fold 2 needs pairs not in the cache


def test_bad_input_is_named():
    features, targets, folds, reference = _problem(20, 6, seed=0)
    with pytest.raises(ValueError, match="features must be"):
        PairedFoldRidge(features[:, 0], targets, folds, reference, L2_BASIS)
    with pytest.raises(ValueError, match="must share n"):
        PairedFoldRidge(features, targets, folds[:-1], reference, L2_BASIS)
    with pytest.raises(ValueError, match="basis must be"):
        PairedFoldRidge(features, targets, folds, reference, L2_BASIS[:3])
    problem = PairedFoldRidge(features, targets, folds, reference, L2_BASIS)
    with pytest.raises(ValueError, match="two different folds"):
        problem.pair_errors(1, 1, slice(None), "global", 1.0)
    with pytest.raises(ValueError, match="two different folds"):
        problem.pair_errors(1, 7, slice(None), "global", 1.0)
    with pytest.raises(ValueError, match="increasing values > 0"):
        NestedRidgeCV("x", None, None, None, [1.0, 0.1], N_OUTER, ResultCache(None))
    with pytest.raises(ValueError, match="at least 3 outer folds"):
        NestedRidgeCV("x", None, None, None, ALPHAS, 2, ResultCache(None))
