"""The ridge-selection engine (training/ridge_selection.py) against a slow NumPy reference
that refits the ridge for every α, scaling and fold from the raw features."""
from __future__ import annotations

import numpy as np
import pytest

from ase_mlnmr.models.linear import EquivariantRidge
from ase_mlnmr.training.ridge_selection import (FoldGrams, equivariant_folds, fit_equivariant_ridge,
                                                search_equivariant_ridge)

GRID = tuple(10.0 ** (k / 2) for k in range(-8, 9))
SCALINGS = ("per_feature", "global")


def _problem(n_atoms: int, p: int, seed: int, noise: float = 0.3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noisy linear λ = 2 problem with badly scaled columns: a U-shaped CV curve in α."""
    rng = np.random.default_rng(seed)
    column_scale = 10.0 ** rng.uniform(-2, 1, size=p)
    features = rng.normal(size=(n_atoms, 5, p)) * column_scale
    weights = rng.normal(size=p) / column_scale * (rng.random(p) < 0.5)
    targets = features @ weights + noise * rng.normal(size=(n_atoms, 5))
    groups = np.repeat(np.arange(n_atoms // 3), 3)[:n_atoms]
    return features, targets, groups


def _reference_mae(features, targets, folds, scaling: str, alpha: float) -> float:
    """CV component MAE from scratch: per fold, scale from the training rows, solve the
    primal normal equations with numpy.linalg.solve, predict the test rows."""
    p = features.shape[2]
    total = 0.0
    for fold in np.unique(folds):
        train, test = folds != fold, folds == fold
        x = features[train].reshape(-1, p)
        if scaling == "per_feature":
            s = np.sqrt(np.mean(x**2, axis=0))
        else:
            s = np.full(p, np.sqrt(np.mean(x**2)))
        xs = x / s
        w = np.linalg.solve(xs.T @ xs + alpha * np.eye(p), xs.T @ targets[train].reshape(-1))
        total += np.abs((features[test].reshape(-1, p) / s) @ w - targets[test].reshape(-1)).sum()
    return total / targets.size


@pytest.mark.parametrize("n_atoms, p, noise", [(60, 12, 0.3), (12, 80, 3.0)], ids=["primal", "dual"])
@pytest.mark.parametrize("alpha_search", ["grid", "walk"])
def test_engine_choice_equals_a_refit_per_alpha_and_fold(n_atoms, p, noise, alpha_search):
    features, targets, groups = _problem(n_atoms, p, seed=n_atoms + p, noise=noise)
    folds = equivariant_folds(groups, 5)
    reference = {(s, a): _reference_mae(features, targets, folds, s, a) for s in SCALINGS for a in GRID}
    best = min(reference, key=reference.get)
    assert best[1] not in (GRID[0], GRID[-1])  # an interior minimum: the problem is a real test
    result = search_equivariant_ridge(FoldGrams(features, targets, folds), SCALINGS, GRID, alpha_search)
    assert (result.feature_scaling, result.alpha) == best
    np.testing.assert_allclose(result.mae, reference[best], rtol=1e-8)
    for (scaling, alpha), mae in reference.items():  # every scored point, not only the winner
        if alpha in result.curves[scaling]:
            np.testing.assert_allclose(result.curves[scaling][alpha], mae, rtol=1e-8)
    if alpha_search == "grid":
        assert all(len(result.curves[s]) == len(GRID) for s in SCALINGS)


def test_walk_scores_fewer_alphas_than_the_grid():
    features, targets, groups = _problem(60, 12, seed=1)
    grams = FoldGrams(features, targets, equivariant_folds(groups, 5))
    walk = search_equivariant_ridge(grams, SCALINGS, GRID, "walk")
    assert sum(len(c) for c in walk.curves.values()) < len(SCALINGS) * len(GRID)


def test_each_fold_gram_block_is_built_once_for_every_alpha_and_scaling(monkeypatch):
    features, targets, groups = _problem(60, 12, seed=2)
    grams = FoldGrams(features, targets, equivariant_folds(groups, 5))
    built = []
    original = FoldGrams.gram

    def counting(self, f):
        if f not in self._gram:
            built.append(f)
        return original(self, f)

    monkeypatch.setattr(FoldGrams, "gram", counting)
    search_equivariant_ridge(grams, SCALINGS, GRID, "grid")
    assert sorted(built) == sorted(grams.fold_ids)


@pytest.mark.parametrize("n_atoms, p", [(60, 12), (12, 80)], ids=["primal", "dual"])
@pytest.mark.parametrize("scaling", ["per_feature", "global", "none"])
def test_final_fit_from_gram_blocks_equals_equivariant_ridge_fit(n_atoms, p, scaling):
    features, targets, groups = _problem(n_atoms, p, seed=7)
    grams = FoldGrams(features, targets, equivariant_folds(groups, 5))
    model = fit_equivariant_ridge(grams, 2, scaling, 1e-2, features, targets)
    reference = EquivariantRidge(lam=2, alpha=1e-2, feature_scaling=scaling).fit(features, targets)
    np.testing.assert_allclose(model.coef_, reference.coef_, rtol=1e-8, atol=1e-12 * np.abs(reference.coef_).max())
    assert model.get_params() == reference.get_params()


def test_engine_rejects_bad_grids_and_searches():
    features, targets, groups = _problem(30, 6, seed=3)
    grams = FoldGrams(features, targets, equivariant_folds(groups, 5))
    with pytest.raises(ValueError, match="increasing"):
        search_equivariant_ridge(grams, SCALINGS, [1.0, 0.1])
    with pytest.raises(ValueError, match="alpha_search"):
        search_equivariant_ridge(grams, SCALINGS, GRID, "golden")
    with pytest.raises(ValueError, match="feature_scaling"):
        search_equivariant_ridge(grams, ["rms"], GRID)


@pytest.mark.parametrize("n_atoms, p", [(60, 12), (12, 80)], ids=["primal", "dual"])
def test_column_subset_and_weights_equal_a_problem_built_on_those_columns(n_atoms, p):
    features, targets, groups = _problem(n_atoms, p, seed=11, noise=1.0)
    folds = equivariant_folds(groups, 5)
    subset = FoldGrams(features, targets, folds, columns=slice(4, None))
    sliced = FoldGrams(np.ascontiguousarray(features[:, :, 4:]), targets, folds)
    a = search_equivariant_ridge(subset, SCALINGS, GRID, "grid")
    b = search_equivariant_ridge(sliced, SCALINGS, GRID, "grid")
    assert (a.feature_scaling, a.alpha) == (b.feature_scaling, b.alpha)
    np.testing.assert_allclose(a.mae, b.mae, rtol=1e-10)
    train = subset.fold_ids[1:]
    s = subset.scale(train, "per_feature")
    A, r = subset.system(train, s, "per_feature")
    weights = subset.scaled_weights(train, s, np.linalg.solve(A + 0.1 * np.eye(len(A)), r))
    x = np.concatenate([features[folds == f][:, :, 4:] for f in train]).reshape(-1, p - 4) / s
    y = np.concatenate([targets[folds == f] for f in train]).reshape(-1)
    reference = np.linalg.lstsq(np.vstack([x, np.sqrt(0.1) * np.eye(p - 4)]),
                                np.concatenate([y, np.zeros(p - 4)]), rcond=None)[0]
    np.testing.assert_allclose(weights, reference, rtol=1e-7, atol=1e-10 * np.abs(reference).max())


@pytest.mark.parametrize("n_atoms, p", [(60, 12), (12, 80)], ids=["primal", "dual"])
def test_walk_solves_neighbouring_alphas_from_one_factorisation_to_round_off(n_atoms, p):
    from ase_mlnmr.models.linear import solve_ridge
    from ase_mlnmr.training.ridge_selection import _HeldOutFold

    features, targets, groups = _problem(n_atoms, p, seed=5, noise=1.0)
    fold = _HeldOutFold(FoldGrams(features, targets, equivariant_folds(groups, 5)), 0, "per_feature")
    fold.solve(1e-2)  # factorised here
    for alpha in (3e-3, 3e-2, 1e-1, 1e-3):
        x = fold.solve(alpha)
        assert fold._anchor[0] == 1e-2  # served by conjugate gradients from the anchor's factor
        reference = solve_ridge(*fold.system(), alpha)
        np.testing.assert_allclose(x, reference, rtol=1e-9, atol=1e-11 * np.abs(reference).max())
    fold.solve(1.0)  # beyond the anchor ratio: a new factorisation
    assert fold._anchor[0] == 1.0


@pytest.mark.parametrize("alpha_search", ["grid", "walk"])
def test_per_feature_scaling_in_the_primal_form_with_fewer_rows_than_features(alpha_search):
    """Fewer training rows than features, where per-feature dual kernels (one per fold) cost
    more than the shared fold Grams: the per-feature scaling is solved in the primal form,
    the global one in the dual form; every scored CV MAE equals a refit from scratch."""
    features, targets, groups = _problem(39, 190, seed=23, noise=3.0)
    folds = equivariant_folds(groups, 5)
    grams = FoldGrams(features, targets, folds)
    train = grams.fold_ids[1:]
    assert sum(len(grams.rows[f]) for f in train) < grams.n_features
    assert grams.is_primal(train, "per_feature") and not grams.is_primal(train, "global")
    result = search_equivariant_ridge(grams, SCALINGS, GRID, alpha_search)
    for scaling in SCALINGS:
        for alpha, mae in result.curves[scaling].items():
            np.testing.assert_allclose(mae, _reference_mae(features, targets, folds, scaling, alpha), rtol=1e-8)
    s = grams.scale(train, "per_feature")
    A, r = grams.system(train, s, "per_feature")
    assert A.shape == (grams.n_features, grams.n_features)
    weights = grams.scaled_weights(train, s, np.linalg.solve(A + 0.1 * np.eye(len(A)), r))
    x = np.concatenate([features[folds == f] for f in train]).reshape(-1, grams.n_features) / s
    y = np.concatenate([targets[folds == f] for f in train]).reshape(-1)
    reference = x.T @ np.linalg.solve(x @ x.T + 0.1 * np.eye(len(x)), y)  # the dual form, from scratch
    np.testing.assert_allclose(weights, reference, rtol=1e-7, atol=1e-10 * np.abs(reference).max())
