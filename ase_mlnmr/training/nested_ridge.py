"""Nested grouped cross-validation of an equivariant ridge over fixed outer folds: the
inner-CV scorer of a hyper-parameter search (features × ridge variant × α) that reuses
each fold's Gram block and each pair model across outer folds.

Outer folds F = {0, …, K−1} of whole structures. The inner CV of outer fold k runs on the
other K−1 folds, one held out at a time; its score for a ridge (feature columns, feature
scaling, α) is

    S_k(α) = 1/(K−1) Σ_{j≠k} E_j(w_{F∖{k,j}}(α)),

w_T the ridge weights trained on the folds T (:class:`PairedFoldRidge`, one weight per
feature shared by the 2λ+1 components, the problem of
:mod:`~ase_mlnmr.training.ridge_selection`) and E_j the error of fold j's predictions
mapped back to Cartesian tensors (default: the MAE of the six independent components,
target units, e.g. a.u. for the EFG). The model trained without {k, j} serves outer folds k
and j alike, so K(K−1)/2 pair fits per α score all K outer folds. α is chosen per outer fold
by :func:`~ase_mlnmr.training.model_selection.grid_walk` on an α grid, and
:meth:`NestedRidgeCV.search` runs :func:`~ase_mlnmr.training.model_selection.staged_search`
over (problem, outer fold) tracks. Every pair error is stored in a
:class:`~ase_mlnmr.training.search_budget.ResultCache` as soon as it is computed (one
document per problem and feature setting), so an interrupted search resumes.
"""
from __future__ import annotations

import gc
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..models.linear import solve_ridge
from .evaluation import efg_component_mae
from .model_selection import grid_walk, staged_search
from .ridge_selection import FoldGrams
from .search_budget import Budget, ResultCache, canonical_json, short_hash

__all__ = ["PairedFoldRidge", "NestedRidgeCV"]

class PairedFoldRidge:
    """One equivariant ridge problem over fixed folds, with each fold's Cartesian reference.

    ``features`` (n_atoms, 2λ+1, p), ``targets`` (n_atoms, 2λ+1) the spherical components
    regressed, ``folds`` one fold id per atom, ``reference`` (n_atoms, 3, 3) the tensors the
    predictions are scored against, ``basis`` (2λ+1, 3, 3) the Cartesian tensor of each
    spherical component (prediction T = Σ_μ f_μ B_μ), ``error(reference, predicted)`` the
    error of one fold. The folds' Gram blocks come from :class:`FoldGrams` (built once);
    the last K−1 scaled training systems are kept (K folds: the inner training sets of one
    outer fold), so every α of a training set costs one solve.
    """

    def __init__(self, features: np.ndarray, targets: np.ndarray, folds: np.ndarray, reference: np.ndarray,
                 basis: np.ndarray,
                 error: Callable[[np.ndarray, np.ndarray], float] = efg_component_mae) -> None:
        self.features = np.asarray(features, dtype=float)
        folds = np.asarray(folds)
        reference = np.asarray(reference, dtype=float)
        self.basis = np.asarray(basis, dtype=float)
        if self.features.ndim != 3:
            raise ValueError(f"features must be (n_atoms, 2λ+1, p), got shape {self.features.shape}")
        n, k = self.features.shape[:2]
        if folds.shape != (n,) or reference.shape[:1] != (n,):
            raise ValueError(f"features (n, 2λ+1, p), folds (n,) and reference (n, ...) must share n; got "
                             f"{self.features.shape}, {folds.shape}, {reference.shape}")
        if self.basis.shape[0] != k or self.basis.shape[1:] != reference.shape[1:]:
            raise ValueError(f"basis must be ({k},) + the reference's tensor shape {reference.shape[1:]}, "
                             f"got {self.basis.shape}")
        self.targets = np.asarray(targets, dtype=float)
        self.folds = folds
        self.error = error
        self.reference = {int(f): reference[folds == f] for f in np.unique(folds)}
        self._grams: dict[int | None, FoldGrams] = {}
        self._systems: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    @property
    def fold_ids(self) -> list[int]:
        return list(self.reference)

    def grams(self, columns: slice) -> FoldGrams:
        """The Gram blocks of the feature columns ``columns`` (built on first use)."""
        if columns.start not in self._grams:
            self._grams[columns.start] = FoldGrams(self.features, self.targets, self.folds, columns)
        return self._grams[columns.start]

    def weights(self, train: Sequence[int], columns: slice, feature_scaling: str, alpha: float) -> np.ndarray:
        """Ridge weights w (p,) on the raw features ``columns`` trained on the folds
        ``train``: w = D argmin_v Σ_rows (x D v − y)² + α|v|², D = diag(1/s), s the
        ``feature_scaling`` of :meth:`FoldGrams.scale` over the training rows."""
        grams = self.grams(columns)
        key = (tuple(train), columns.start, feature_scaling)
        if key not in self._systems:
            while len(self._systems) >= max(1, len(self.fold_ids) - 1):
                self._systems.pop(next(iter(self._systems)))
            s = grams.scale(train, feature_scaling)
            self._systems[key] = (s, *grams.system(train, s, feature_scaling))
        s, A, r = self._systems[key]
        return grams.scaled_weights(train, s, solve_ridge(A, r, alpha)) / s

    def predict(self, fold: int, columns: slice, weights: np.ndarray) -> np.ndarray:
        """Cartesian predictions (n_fold, 3, 3) of the atoms of ``fold``: Σ_μ (x_μ · w) B_μ."""
        grams = self.grams(columns)
        spherical = (grams.x(grams.rows[fold]) @ weights).reshape(-1, self.basis.shape[0])
        return np.einsum("nm,m...->n...", spherical, self.basis)

    def pair_errors(self, held_out: int, scored: int, columns: slice, feature_scaling: str,
                    alpha: float) -> dict[str, float]:
        """{str(fold): E_fold} for the two folds of the model trained without {held_out, scored}."""
        if held_out == scored or not {held_out, scored} <= set(self.fold_ids):
            raise ValueError(f"a pair of two different folds of {self.fold_ids} is needed, got {held_out}, {scored}")
        train = [f for f in self.fold_ids if f not in (held_out, scored)]
        w = self.weights(train, columns, feature_scaling, alpha)
        return {str(f): float(self.error(self.reference[f], self.predict(f, columns, w))) for f in (held_out, scored)}


class NestedRidgeCV:
    """Inner-CV scores S_k(α) of the candidates of a search, for several problems (e.g.
    species) sharing the outer folds 0..n_outer−1.

    A candidate setting is split by ``split(setting) -> (features, variant)`` into the
    parameters that need new features and those that only select columns or the scaling;
    ``ridge(features, variant) -> (columns, feature_scaling)``; ``build(problem, features)
    -> PairedFoldRidge`` makes the features of one problem (one problem and feature setting
    in memory at a time). Pair errors are cached in ``cache`` under
    ``{name}_{problem}_{short_hash(features)}`` with the key ``"{a}-{b}|{variant}|{α index}"``;
    ``budget`` is checked before each new solve. ``min_gain``: a step of the α walk must
    lower the score by more than this fraction.
    """

    def __init__(self, name: str, build: Callable[[str, dict], PairedFoldRidge],
                 split: Callable[[Mapping[str, Any]], tuple[dict, dict]],
                 ridge: Callable[[dict, dict], tuple[slice, str]], alphas: Sequence[float], n_outer: int,
                 cache: ResultCache, budget: Budget | None = None, min_gain: float = 1e-3,
                 log: Callable[[str], None] = print) -> None:
        self.alphas = [float(a) for a in alphas]
        if len(self.alphas) == 0 or any(b <= a for a, b in zip(self.alphas, self.alphas[1:])) or self.alphas[0] <= 0:
            raise ValueError(f"the α grid must be increasing values > 0, got {self.alphas}")
        if n_outer < 3:
            raise ValueError(f"nested cross-validation needs at least 3 outer folds, got {n_outer}")
        self.name, self.build, self.split, self.ridge = name, build, split, ridge
        self.n_outer, self.cache, self.budget, self.min_gain, self.log = n_outer, cache, budget, min_gain, log
        self.used_names: set[str] = set()
        self.n_solves = 0
        self._current: tuple[str, str] | None = None  # (problem, canonical features) in memory
        self._problem: PairedFoldRidge | None = None
        self._group: tuple[str, float, int, float] | None = None  # (features, start time, solves, build seconds)

    def _ridge_problem(self, problem: str, features: dict) -> tuple[PairedFoldRidge, float]:
        """The problem in memory (built if new) and the seconds its building took now."""
        key = (problem, canonical_json(features))
        if self._group is None or self._group[0] != key[1]:
            self.close()
            self._group = (key[1], time.perf_counter(), self.n_solves, 0.0)
        if self._current == key:
            return self._problem, 0.0
        self._problem = self._current = None
        gc.collect()
        if self.budget is not None:
            self.budget.check(f"{self.name} features {features} ({problem})")
        t0 = time.perf_counter()
        self._problem = self.build(problem, features)
        self._current = key
        seconds = time.perf_counter() - t0
        self._group = (*self._group[:3], self._group[3] + seconds)
        return self._problem, seconds

    def close(self) -> None:
        """Log the solves of the current feature setting and free its problem."""
        if self._group is not None and self.n_solves > self._group[2]:
            self.log(f"  [{self.name}] {self._group[0]}: {self.n_solves - self._group[2]} solves, "
                     f"{time.perf_counter() - self._group[1]:.0f} s (building the problems {self._group[3]:.0f} s)")
        self._problem = self._current = self._group = None
        gc.collect()

    def pair_error(self, problem: str, features: dict, variant: dict, fold: int, other: int,
                   alpha_index: int) -> float:
        """E_other of the model trained without outer folds {fold, other} at α = alphas[alpha_index]."""
        name = f"{self.name}_{problem}_{short_hash(features)}"
        self.used_names.add(name)
        entry = self.cache.load(name)
        entry.setdefault("features", features)

        def solve() -> dict[str, float]:
            ridge_problem, built = self._ridge_problem(problem, features)
            columns, feature_scaling = self.ridge(features, variant)
            t0 = time.perf_counter()
            errors = ridge_problem.pair_errors(fold, other, columns, feature_scaling, self.alphas[alpha_index])
            seconds = entry.setdefault("seconds", {"solves": 0.0, "features_and_gram": 0.0})
            seconds["solves"] += time.perf_counter() - t0
            seconds["features_and_gram"] += built
            self.n_solves += 1
            return errors

        key = f"{min(fold, other)}-{max(fold, other)}|{canonical_json(variant)}|{alpha_index}"
        return self.cache.get_or_compute(name, key, solve, self.budget, "an inner-CV solve", flush=False)[str(other)]

    def walk(self, problem: str, fold: int, setting: Mapping[str, Any], start: int) -> tuple[int, float, dict]:
        """:func:`grid_walk` of S_fold over the α grid from index ``start``: (α index, S, {index: S})."""
        features, variant = self.split(setting)

        def score(i: int) -> float:
            return float(np.mean([self.pair_error(problem, features, variant, fold, j, i)
                                  for j in range(self.n_outer) if j != fold]))

        try:
            return grid_walk(score, len(self.alphas), start, min_gain=self.min_gain)
        finally:
            self.cache.flush()  # an interrupted run keeps every finished solve

    def __call__(self, track: tuple[str, int], setting: dict, alpha_index: int) -> tuple[float, int, dict]:
        """Score of one candidate of :func:`staged_search` (the hint is the α index)."""
        i, score, curve = self.walk(*track, setting, alpha_index)
        return score, i, {"alpha": self.alphas[i], "inner_mae": score,
                          "alpha_curve": {self.alphas[k]: v for k, v in curve.items()}}

    def search(self, problems: Sequence[str], outer_folds: Sequence[int], start: Mapping[str, Any],
               stages: Sequence[tuple], alpha_start: int) -> tuple[dict, dict]:
        """Greedy staged search per (problem, outer fold); a stage (p, values, problems)
        applies to those problems only. Returns (chosen, history), both {problem: {str(fold):
        ...}}; chosen holds the setting, α, inner score and whether α is at a grid edge."""
        tracks = [(p, k) for p in problems for k in outer_folds]
        stages = [stage if len(stage) < 3 else (stage[0], stage[1], [(p, k) for p in stage[2] for k in outer_folds])
                  for stage in stages]
        try:
            state, history = staged_search(tracks, start, stages, self, hint=alpha_start,
                                           group_key=lambda setting: canonical_json(self.split(setting)[0]))
        finally:
            self.close()
        chosen: dict[str, dict[str, Any]] = {p: {} for p in problems}
        for (p, k), best in state.items():
            chosen[p][str(k)] = {"setting": best["setting"], "alpha": self.alphas[best["hint"]],
                                 "inner_mae": best["score"],
                                 "alpha_at_grid_edge": best["hint"] in (0, len(self.alphas) - 1)}
        return chosen, {p: {str(k): history[(p, k)] for k in outer_folds} for p in problems}

    def tuning_seconds(self) -> dict[str, float]:
        """Seconds spent on the solves (Gram blocks included) and on building the problems
        (``features_and_gram``: features, fold rows) of the documents this scorer used,
        summed over every run that filled the cache."""
        total = {"solves": 0.0, "features_and_gram": 0.0}
        for name in self.used_names:
            for k, v in self.cache.load(name).get("seconds", {}).items():
                total[k] += v
        return total
