"""Ridge α and feature-scaling selection for the equivariant (λ-SOAP) models by grouped
cross-validation, reusing each fold's Gram block across α and scalings.

The problem (one weight per feature shared by the 2λ+1 components μ, rows = atoms × μ)::

    w(α, s) = argmin_w Σ_rows (x_row / s · w − y_row)² + α |w|²,   s the feature scale

with ``s`` from the training rows (:func:`~ase_mlnmr.models.linear.equivariant_feature_scale`:
per-feature RMS, one global RMS, or 1). Targets need no scaling (w is linear in y). The
score of (α, s) is the cross-validated component MAE, Σ_folds Σ_test rows |x·w − y| / n_rows.

Each fold f contributes G_f = X_fᵀX_f, b_f = X_fᵀy_f and the column sums of squares once;
the training Gram of a fold is Σ_{g≠f} G_g, scaled by D = diag(1/s): D G D. When the
training rows are fewer than the features, the dual (kernel) form X D² Xᵀ is used, as
:func:`~ase_mlnmr.models.linear.ridge_weights` does; unscaled cross blocks X_f X_gᵀ are
shared by all folds and by the global / no scaling. The per-feature scaling has a
different D for every training set, so its dual kernels share nothing: each fold costs a
product of its training rows with all rows. When those products cost more than the
fold Grams plus p × p factorisations (:meth:`FoldGrams.is_primal`), the per-feature scaling
is solved in the primal form D (Σ G_g) D + αI even with fewer rows than features (the same
minimiser; positive definite for α > 0).

Two α searches: ``"grid"`` scores every α of the grid from one eigendecomposition per fold
and scaling (the exact minimum on the grid); ``"walk"`` (faster) starts at the middle of
the grid (later scalings at the best α so far) and steps to the better neighbour while
the score strictly decreases — the minimum of a U-shaped CV curve, which is what the grid
search finds when the curve has one minimum. The walk factorises A + α₀I = LLᵀ once per
fold and solves neighbouring α (within a factor :data:`ANCHOR_RATIO`) by conjugate
gradients on L⁻¹(A + αI)L⁻ᵀ, whose condition number is at most max(α/α₀, α₀/α): a few
dozen pairs of triangular solves (p² each) replace a p³/3 factorisation.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import scipy.linalg

from ..models.linear import FEATURE_SCALINGS, EquivariantRidge, solve_ridge
from .config import ALPHA_GRID, AUTO_FEATURE_SCALINGS, DEFAULT_CONFIG
from .model_selection import fold_assignment

__all__ = ["FoldGrams", "RidgeSearchResult", "equivariant_folds", "search_equivariant_ridge", "fit_equivariant_ridge",
           "select_equivariant_alpha", "select_equivariant_ridge", "ALPHA_SEARCHES"]

#: α searches of :func:`search_equivariant_ridge`.
ALPHA_SEARCHES = ("walk", "grid")

#: α within this factor of a factorised α₀ are solved from that factor by conjugate gradients.
ANCHOR_RATIO = 10.0

#: Rows per chunk when accumulating Gram blocks (bounds the temporaries).
_ROW_CHUNK = 8192

#: Factorisations per held-out fold assumed by the primal/dual cost estimate of the
#: per-feature scaling (the walk factorises about twice per fold and scaling).
_FACTORISATIONS_PER_FOLD = 2


def equivariant_folds(groups: np.ndarray, n_splits: int, seed: int = 0) -> np.ndarray:
    """Fold id per atom: grouped k-fold (k = min(n_splits, number of groups)), or per atom
    when there is only one group."""
    labels = np.asarray(groups)
    n = len(labels)
    n_groups = len(np.unique(labels))
    if n_groups >= 2:
        return fold_assignment(n, min(n_splits, n_groups), groups=labels, seed=seed)
    if n < 2:
        raise ValueError(f"cross-validation needs at least 2 atoms, got {n}")
    return fold_assignment(n, min(n_splits, n), seed=seed)


class FoldGrams:
    """The blocks of one equivariant ridge problem, per fold.

    ``features`` (n_atoms, 2λ+1, p), ``targets`` (n_atoms, 2λ+1), ``folds`` one fold id per
    atom; ``columns`` optionally restricts the problem to some feature columns (e.g. without
    the two-body block). Feature rows are not copied: each fold keeps its row indices into
    the flat (n_atoms·(2λ+1), p) view; G_f, b_f and the column sums of squares are built once.
    """

    def __init__(self, features: np.ndarray, targets: np.ndarray, folds: np.ndarray,
                 columns: slice = slice(None)) -> None:
        features = np.asarray(features, dtype=float)
        n, k, p = features.shape
        if np.shape(targets) != (n, k):
            raise ValueError(f"targets must be ({n}, {k}), got {np.shape(targets)}")
        self.columns = columns
        self.n_features = len(range(p)[columns])
        self._flat = np.ascontiguousarray(features).reshape(n * k, p)
        self.y = np.asarray(targets, dtype=float).reshape(n * k)
        row_fold = np.repeat(np.asarray(folds), k)
        self.fold_ids = [int(f) for f in np.unique(row_fold)]
        self.rows = {f: np.flatnonzero(row_fold == f) for f in self.fold_ids}
        self.sum_squares = {f: self._column_sum_squares(f) for f in self.fold_ids}
        self._per_feature_primal = self._primal_cheaper_per_feature()
        self._gram: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._cross: dict[tuple[int, int], np.ndarray] = {}

    @property
    def n_rows(self) -> int:
        return int(self.y.size)

    def x(self, rows: np.ndarray) -> np.ndarray:
        """Feature rows ``rows`` (of the selected columns), unscaled."""
        return self._flat[rows, self.columns]

    def _column_sum_squares(self, f: int) -> np.ndarray:
        total = np.zeros(self.n_features)
        for start in range(0, len(self.rows[f]), _ROW_CHUNK):
            x = self.x(self.rows[f][start:start + _ROW_CHUNK])
            total += np.einsum("ij,ij->j", x, x)
        return total

    def gram(self, f: int) -> tuple[np.ndarray, np.ndarray]:
        """(G_f, b_f) = (X_fᵀX_f, X_fᵀy_f), unscaled."""
        if f not in self._gram:
            G = np.zeros((self.n_features, self.n_features))
            b = np.zeros(self.n_features)
            for start in range(0, len(self.rows[f]), _ROW_CHUNK):
                rows = self.rows[f][start:start + _ROW_CHUNK]
                x = self.x(rows)
                G += x.T @ x
                b += x.T @ self.y[rows]
            self._gram[f] = (G, b)
        return self._gram[f]

    def cross(self, f: int, g: int) -> np.ndarray:
        """X_f X_gᵀ, unscaled (dual form)."""
        if (g, f) in self._cross:
            return self._cross[(g, f)].T
        if (f, g) not in self._cross:
            self._cross[(f, g)] = self.x(self.rows[f]) @ self.x(self.rows[g]).T
        return self._cross[(f, g)]

    def scale(self, train: Sequence[int], feature_scaling: str) -> np.ndarray:
        """Feature scale s of the training folds, as :func:`equivariant_feature_scale` on their rows."""
        n_train = sum(len(self.rows[f]) for f in train)
        squares = sum(self.sum_squares[f] for f in train)
        if feature_scaling == "per_feature":
            s = np.sqrt(squares / n_train)
            return np.where(s > 0, s, 1.0)
        if feature_scaling == "global":
            s = float(np.sqrt(squares.sum() / (n_train * self.n_features)))
            return np.full(self.n_features, s if s > 0 else 1.0)
        if feature_scaling == "none":
            return np.ones(self.n_features)
        raise ValueError(f"feature_scaling must be one of {FEATURE_SCALINGS}, got {feature_scaling!r}")

    def _primal_cheaper_per_feature(self) -> bool:
        """Whether the per-feature scaling's held-out folds cost fewer multiply-adds in the primal form.

        Dual, per fold f (n_T training rows, n_f test rows, p features): the scaled kernel
        n_T² p / 2 + test rows n_f n_T p + factorisations n_T³ / 6 each; primal: the fold
        Grams once, N p² / 2 for all N rows (shared with the other scalings' primal
        systems), + factorisations p³ / 6 each.
        """
        p, counts = self.n_features, [len(self.rows[f]) for f in self.fold_ids]
        total = sum(counts)
        dual = sum((total - n_f) ** 2 * p / 2 + n_f * (total - n_f) * p
                   + _FACTORISATIONS_PER_FOLD * (total - n_f) ** 3 / 6 for n_f in counts)
        primal = total * p**2 / 2 + len(counts) * _FACTORISATIONS_PER_FOLD * p**3 / 6
        return primal < dual

    def is_primal(self, train: Sequence[int], feature_scaling: str = "global") -> bool:
        """Primal (p × p) form when the training rows are at least the features, as ``ridge_weights``;
        for the per-feature scaling also when that is cheaper (module docstring)."""
        if self.n_features <= sum(len(self.rows[f]) for f in train):
            return True
        return feature_scaling == "per_feature" and self._per_feature_primal

    def system(self, train: Sequence[int], s: np.ndarray, feature_scaling: str) -> tuple[np.ndarray, np.ndarray]:
        """(A, r) of the scaled problem: primal A = D G D, r = D b; dual A = X D² Xᵀ, r = y."""
        if self.is_primal(train, feature_scaling):
            A = self.gram(train[0])[0].copy()
            for f in train[1:]:
                A += self.gram(f)[0]
            A /= s[:, None]
            A /= s[None, :]
            return A, sum(self.gram(f)[1] for f in train) / s
        y = np.concatenate([self.y[self.rows[f]] for f in train])
        if feature_scaling in ("global", "none"):  # unscaled blocks serve every fold
            K = np.block([[self.cross(f, g) for g in train] for f in train]) / float(s[0]) ** 2
        else:
            x = np.concatenate([self.x(self.rows[f]) for f in train]) / s
            K = x @ x.T
        return K, y

    def scaled_weights(self, train: Sequence[int], s: np.ndarray, solution: np.ndarray) -> np.ndarray:
        """Weights of the scaled features from the solution of :meth:`system` (dual: Σ_f (X_f/s)ᵀ c_f).

        The form is told by the solution's length: p (primal) or the training rows (dual);
        when they are equal the form is primal (:meth:`is_primal`)."""
        if len(solution) == self.n_features:
            return solution
        offsets = np.cumsum([0] + [len(self.rows[f]) for f in train])
        return sum(self.x(self.rows[f]).T @ solution[offsets[i]:offsets[i + 1]] for i, f in enumerate(train)) / s


@dataclass
class RidgeSearchResult:
    """Chosen ``feature_scaling`` and ``alpha``, their CV component MAE (target units), and
    the CV MAE of every (scaling, α) scored: ``curves[scaling][α]``."""

    feature_scaling: str
    alpha: float
    mae: float
    curves: dict[str, dict[float, float]] = field(default_factory=dict)

    def curve(self, feature_scaling: str, grid: Sequence[float]) -> np.ndarray:
        """CV MAE over ``grid`` (NaN where not scored)."""
        scored = self.curves.get(feature_scaling, {})
        return np.array([scored.get(float(a), np.nan) for a in grid])


class _HeldOutFold:
    """One fold held out, for one feature scaling: the training problem for any α and the
    absolute error on the held-out rows. Primal systems are rebuilt from the Gram blocks at
    each call (one p × p matrix alive at a time); dual systems (smaller) are kept."""

    def __init__(self, grams: FoldGrams, test: int, feature_scaling: str) -> None:
        self.grams, self.test, self.feature_scaling = grams, test, feature_scaling
        self.train = [f for f in grams.fold_ids if f != test]
        self.s = grams.scale(self.train, feature_scaling)
        self.primal = grams.is_primal(self.train, feature_scaling)
        self.y_test = grams.y[grams.rows[test]]
        self._anchor: tuple[float, np.ndarray, np.ndarray] | None = None
        self._dual = self._cross = None
        if self.primal:
            return
        if feature_scaling in ("global", "none"):  # unscaled cross blocks shared by every fold
            self._dual = grams.system(self.train, self.s, feature_scaling)
            self._cross = np.hstack([grams.cross(test, f) for f in self.train]) / float(self.s[0]) ** 2
            return
        rows = np.concatenate([grams.rows[f] for f in self.train] + [grams.rows[test]])
        x = grams.x(rows)  # one scaled copy gives both the training kernel and the test rows
        x /= self.s
        products = x @ x.T
        del x
        n_train = len(rows) - len(grams.rows[test])
        y_train = np.concatenate([grams.y[grams.rows[f]] for f in self.train])
        self._dual = (np.ascontiguousarray(products[:n_train, :n_train]), y_train)
        self._cross = np.ascontiguousarray(products[n_train:, :n_train])

    def system(self) -> tuple[np.ndarray, np.ndarray]:
        if self._dual is not None:
            return self._dual
        return self.grams.system(self.train, self.s, self.feature_scaling)

    def solve(self, alpha: float) -> np.ndarray:
        """Solution of (A + αI) x = r: a Cholesky factorisation A + α₀I = LLᵀ at an anchor
        α₀, reused for any α within a factor :data:`ANCHOR_RATIO` of it through
        :func:`_shifted_solve` (no new factorisation, no A needed)."""
        if self._anchor is not None and max(alpha / self._anchor[0], self._anchor[0] / alpha) <= ANCHOR_RATIO:
            x = _shifted_solve(self._anchor[1], alpha - self._anchor[0], self._anchor[2])
            if x is not None:
                return x
        A, r = self.system()
        M = A if self._dual is None else A.copy()  # a rebuilt primal system can be overwritten
        M[np.diag_indices_from(M)] += alpha
        try:
            lower, _ = scipy.linalg.cho_factor(M, lower=True, overwrite_a=True, check_finite=False)
        except np.linalg.LinAlgError:  # numerically singular: least squares, no anchor
            self._anchor = None
            return solve_ridge(*self.system(), alpha)
        c = scipy.linalg.solve_triangular(lower, r, lower=True, check_finite=False)
        self._anchor = (alpha, lower, c)
        return scipy.linalg.solve_triangular(lower, c, lower=True, trans=1, check_finite=False)

    def error(self, solution: np.ndarray) -> float:
        """Σ |prediction − target| over the held-out rows for a solution of :meth:`system`."""
        if self.primal:
            predicted = self.grams.x(self.grams.rows[self.test]) @ (solution / self.s)
        else:
            predicted = self._cross @ solution
        return float(np.abs(predicted - self.y_test).sum())


def _shifted_solve(lower: np.ndarray, delta: float, c: np.ndarray, tol: float = 1e-12,
                   max_iter: int = 300) -> np.ndarray | None:
    """x with (A + (α₀ + δ)I) x = r from the factor L of A + α₀I = LLᵀ and c = L⁻¹r.

    A + (α₀ + δ)I = L (I + δB) Lᵀ with B = L⁻¹L⁻ᵀ, so x = L⁻ᵀy where (I + δB) y = c is solved
    by conjugate gradients from y = c (the solution at δ = 0). The eigenvalues of I + δB are
    (λ + α₀ + δ)/(λ + α₀), λ those of A: its condition number is at most max(α/α₀, α₀/α).
    Each iteration costs two triangular solves. Stops when |residual| ≤ tol |c|; None if
    not converged.
    """
    def apply(v: np.ndarray) -> np.ndarray:
        inner = scipy.linalg.solve_triangular(lower, v, lower=True, trans=1, check_finite=False)
        return v + delta * scipy.linalg.solve_triangular(lower, inner, lower=True, check_finite=False)

    y = c.copy()
    residual = c - apply(y)
    direction = residual.copy()
    rr = float(residual @ residual)
    bound = tol**2 * float(c @ c)
    for _ in range(max_iter):
        if rr <= bound:
            return scipy.linalg.solve_triangular(lower, y, lower=True, trans=1, check_finite=False)
        q = apply(direction)
        step = rr / float(direction @ q)
        y += step * direction
        residual -= step * q
        rr_next = float(residual @ residual)
        direction = residual + (rr_next / rr) * direction
        rr = rr_next
    return None


def _eigen_errors(fold: _HeldOutFold, grid: Sequence[float]) -> np.ndarray:
    """Σ |error| on the held-out rows for every α, from one eigendecomposition A = VΛVᵀ:
    x = V(Λ + αI)⁻¹Vᵀr, then one step of iterative refinement x += V(Λ + αI)⁻¹Vᵀ(r − (A + αI)x).
    The eigenvectors of an ill-conditioned A are accurate only to ε‖A‖/gap (on gehlenite O,
    κ ≈ 4e11: weights 3e-5 off, CV MAE 6.5e-8); the step costs three p² products per α."""
    A, r = fold.system()
    evals, vectors = np.linalg.eigh(A)
    evals = np.maximum(evals, 0.0)

    def solve(v: np.ndarray, alpha: float) -> np.ndarray:
        return vectors @ ((vectors.T @ v) / (evals + alpha))

    errors = []
    for alpha in grid:
        x = solve(r, alpha)
        x += solve(r - A @ x - alpha * x, alpha)
        errors.append(fold.error(x))
    return np.array(errors)


def search_equivariant_ridge(
    grams: FoldGrams,
    feature_scalings: Sequence[str],
    grid: Sequence[float],
    alpha_search: str = "walk",
) -> RidgeSearchResult:
    """Feature scaling and α with the lowest CV component MAE (first on ties, scalings in
    the order given). Every fold's Gram block is built once and reused for every α and scaling."""
    if alpha_search not in ALPHA_SEARCHES:
        raise ValueError(f"alpha_search must be one of {ALPHA_SEARCHES}, got {alpha_search!r}")
    grid = [float(a) for a in grid]
    if len(grid) == 0 or any(b <= a for a, b in zip(grid, grid[1:])) or grid[0] <= 0:
        raise ValueError(f"the α grid must be increasing values > 0, got {grid}")
    if len(grams.fold_ids) < 2:
        raise ValueError("cross-validation needs at least two folds")
    curves: dict[str, dict[float, float]] = {}
    best = (np.inf, feature_scalings[0], grid[0])
    start = len(grid) // 2
    for scaling in feature_scalings:
        folds = [_HeldOutFold(grams, test, scaling) for test in grams.fold_ids]
        if alpha_search == "grid":
            total = sum(_eigen_errors(fold, grid) for fold in folds)
            scored = {a: float(e) / grams.n_rows for a, e in zip(grid, total)}
        else:
            scored = {}

            def score(i: int) -> float:
                if not 0 <= i < len(grid):
                    return np.inf
                if grid[i] not in scored:
                    scored[grid[i]] = sum(fold.error(fold.solve(grid[i])) for fold in folds) \
                        / grams.n_rows
                return scored[grid[i]]

            i = start
            while True:
                here, left, right = score(i), score(i - 1), score(i + 1)
                if min(left, right) >= here:
                    break
                i = i - 1 if left < right else i + 1
        curves[scaling] = dict(sorted(scored.items()))
        alpha = min(curves[scaling], key=lambda a: (curves[scaling][a], grid.index(a)))
        if curves[scaling][alpha] < best[0]:
            best = (curves[scaling][alpha], scaling, alpha)
            start = grid.index(alpha)
    return RidgeSearchResult(best[1], best[2], float(best[0]), curves)


def fit_equivariant_ridge(grams: FoldGrams, lam: int, feature_scaling: str, alpha: float,
                          features: np.ndarray, targets: np.ndarray) -> EquivariantRidge:
    """An :class:`EquivariantRidge` fitted on all rows; in the primal form from the summed
    Gram blocks (no new XᵀX), identical to ``EquivariantRidge.fit`` up to round-off."""
    model = EquivariantRidge(lam=lam, alpha=alpha, feature_scaling=feature_scaling)
    every = grams.fold_ids
    if not grams.is_primal(every, feature_scaling):
        return model.fit(features, targets)
    s = grams.scale(every, feature_scaling)
    target_scale = float(np.sqrt(np.mean(grams.y ** 2)))
    target_scale = target_scale if target_scale > 0 else 1.0
    A, r = grams.system(every, s, feature_scaling)
    weights = solve_ridge(A, r / target_scale, alpha)
    arrays = {"scaled_weights": weights, "feature_scale": s, "target_scale": np.array(target_scale)}
    return EquivariantRidge.from_arrays(arrays, model.get_params())


def select_equivariant_alpha(features: np.ndarray, targets: np.ndarray, groups: np.ndarray,
                             grid: Sequence[float] = ALPHA_GRID,
                             n_splits: int = DEFAULT_CONFIG["selection"]["n_splits"],
                             feature_scaling: str = "per_feature") -> tuple[float, np.ndarray]:
    """α of one feature scaling by grouped k-fold CV over the whole grid: (best α, CV
    component MAE of every α)."""
    grams = FoldGrams(features, targets, equivariant_folds(groups, n_splits))
    result = search_equivariant_ridge(grams, [feature_scaling], grid, alpha_search="grid")
    return result.alpha, result.curve(feature_scaling, grid)


def select_equivariant_ridge(features: np.ndarray, targets: np.ndarray, groups: np.ndarray,
                             feature_scalings: Sequence[str] = AUTO_FEATURE_SCALINGS,
                             grid: Sequence[float] = ALPHA_GRID,
                             n_splits: int = DEFAULT_CONFIG["selection"]["n_splits"],
                             alpha_search: str = "grid") -> tuple[str, float, dict[str, np.ndarray]]:
    """Feature scaling and α by grouped k-fold CV: (scaling, α, {scaling: CV MAE over the
    grid}); the folds' Gram blocks are shared by every scaling and α."""
    grams = FoldGrams(features, targets, equivariant_folds(groups, n_splits))
    result = search_equivariant_ridge(grams, list(feature_scalings), grid, alpha_search)
    return result.feature_scaling, result.alpha, {s: result.curve(s, grid) for s in feature_scalings}
