"""Linear ridge models: scalar targets, and rotation-equivariant lambda-tensor targets.

``RidgeRegression`` (scalars, e.g. sigma_iso in ppm)::

    x' = (x - x_mean) / x_scale,  y' = (y - y_mean) / y_scale
    w' = (X'^T X' + alpha I)^-1 X'^T y',   f(x) = y_scale * x'.w' + y_mean

(``x_mean``/``y_mean`` are zero without an intercept; ``x_scale`` the per-feature
standard deviation (RMS without intercept) when ``scale_features``, else 1.)

``EquivariantRidge`` (spherical lambda-tensor targets, e.g. the l = 2 part of the EFG in
a.u. or of sigma in ppm): features X[n, mu, j] are spherical lambda-tensors (one per
feature column j), targets y[n, mu]; one weight per feature shared by all mu::

    y_mu(n) = sum_j w_j X[n, mu, j]
    (sum_mu X_mu^T X_mu + alpha I) w = sum_mu X_mu^T y_mu     (scaled variables)

No intercept and no centring (both break equivariance). Features are only divided by
positive scales, either one per feature (``feature_scaling="per_feature"``: RMS of the
column over samples and mu) or one for all (``"global"``: RMS over every entry, which
leaves the relative weight of the features as the descriptor made it); the targets by
one scale (RMS over samples and mu). ``alpha`` acts on the scaled problem.
If every feature column rotates with the Wigner matrix D^lambda(R), so does the
prediction: for lambda = 2 the Cartesian tensor becomes R T R^T.

Committee (:meth:`EquivariantRidge.fit_members`, :mod:`ase_mlnmr.models.committee`): member k
solves the same scaled problem (the full model's feature and target scales and alpha) on
its rows only, then is re-centred on the full weights; each member is an equivariant
model of its own (one weight per feature), so every member rotates with the structure.
In the primal form the K member Gram matrices are built together at the cost of one Gram
of all rows (:func:`member_normal_equations`), then each is factorised once.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg
from scipy.linalg import blas

from ..core.spherical_tensors import l2_to_symmetric_traceless, vector_to_antisymmetric
from .committee import (calibration_fit_rows, calibration_from_params, calibration_params, fit_calibration,
                        member_spread, recentred)

__all__ = ["RidgeRegression", "EquivariantRidge", "FEATURE_SCALINGS", "equivariant_feature_scale", "solve_ridge",
           "ridge_weights", "membership_cells", "member_normal_equations", "member_gram_batches",
           "member_ridge_weights"]

#: Gram rows per block of :func:`member_normal_equations` (buffer memory ~ (cells + members) · p · block · 8 bytes).
MEMBER_GRAM_BLOCK = 256

#: Bytes of p × p Grams that one pass of :func:`member_normal_equations` may hold; fits
#: beyond that take further passes over the rows (:func:`member_gram_batches`).
MEMBER_GRAM_MEMORY = 512 * 2**20


def solve_ridge(gram: np.ndarray, rhs: np.ndarray, alpha: float, *, overwrite_gram: bool = False) -> np.ndarray:
    """Solve (G + alpha I) w = b for symmetric positive semi-definite G (p × p), b (p,) or (p, m).

    Cholesky G + alpha I = UᵀU (LAPACK potrf / potrs on the upper triangle of G, the
    diagonal shifted in place) when positive definite, least squares otherwise (e.g.
    alpha = 0 with collinear features: minimum-norm solution). ``overwrite_gram``: a
    C-contiguous float64 G is the workspace (no p × p copy) and is destroyed; otherwise G
    is left unchanged.
    """
    gram = np.asarray(gram)
    owned = overwrite_gram and gram.dtype == np.float64 and gram.flags.c_contiguous and gram.flags.writeable
    work = gram if owned else np.array(gram, dtype=float, order="C")
    diagonal = work.diagonal().copy()
    work.flat[::work.shape[0] + 1] += alpha
    if alpha > 0:
        # work.T is Fortran-ordered: its lower triangle is the upper one of work, factorised in place
        factor, info = scipy.linalg.lapack.dpotrf(work.T, lower=True, clean=False, overwrite_a=True)
        if info == 0:
            weights, info = scipy.linalg.lapack.dpotrs(factor, rhs, lower=True)
            if info == 0:
                return weights
        work = np.tril(work, -1)  # not positive definite: G + alpha I from the untouched lower triangle
        work += work.T
        work.flat[::work.shape[0] + 1] = diagonal + alpha
    return scipy.linalg.lstsq(work, rhs, check_finite=False)[0]


def ridge_weights(design: np.ndarray, targets: np.ndarray, alpha: float) -> np.ndarray:
    """argmin_w ||X w - y||² + alpha ||w||², in whichever form is smaller.

    Primal (XᵀX + αI) w = Xᵀy when n_samples >= n_features; otherwise the identical dual
    solution w = Xᵀ (XXᵀ + αI)⁻¹ y, so memory and time scale with min(n, p)² — λ-SOAP
    features of many species easily have p ~ 10⁴–10⁵ for a few thousand samples.
    """
    n, p = design.shape
    if p <= n or alpha <= 0:
        return solve_ridge(design.T @ design, design.T @ targets, alpha, overwrite_gram=True)
    return design.T @ solve_ridge(design @ design.T, targets, alpha, overwrite_gram=True)


def membership_cells(member_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cells of rows with equal membership: (membership (C, K) bool of the C distinct
    columns of ``member_rows`` (K, n) bool, cell (n,) int of every row)."""
    membership, row_cell = np.unique(np.asarray(member_rows, dtype=bool).T, axis=0, return_inverse=True)
    return membership, row_cell.ravel()


def member_normal_equations(design: np.ndarray, targets: np.ndarray, member_rows: np.ndarray
                            ) -> tuple[np.ndarray, np.ndarray]:
    """(X_Sᵀ X_S, X_Sᵀ y_S) of every member S (rows where ``member_rows[k]``, (K, n) bool):
    shapes (K, p, p) and (K, p[, T]), for ``design`` (n, p) and ``targets`` (n[, T]).

    The rows fall into runs of consecutive rows with equal membership (cells of
    :func:`membership_cells`, or pieces of them); with A (K × R) the membership of the R
    runs, G_k = Σ_r A_kr X_rᵀ X_r. Per block J of rows the runs' blocks X_rᵀ X_r[J, :end]
    (lower triangle; per run a GEMM X_r[:, J]ᵀ X_r[:, :start] and a SYRK X_r[:, J]ᵀ X_r[:, J])
    are stacked in one buffer, reused by every J, and combined for all members by one
    product with A, which fills G_k[J, :end] and, transposed, G_k[:start, J]: the cost of one
    Gram of all rows plus K·R·p²/2, against K f times that Gram for separate member Grams
    (f the members' fraction of rows). Rows are gathered cell by cell only when the runs
    are more than twice the cells (callers that sort the rows by cell save that copy).
    """
    membership, row_cell = membership_cells(member_rows)
    if np.count_nonzero(np.diff(row_cell)) + 1 > 2 * len(membership):  # cells scattered in short runs: gather
        order = np.argsort(row_cell, kind="stable")
        design, targets, row_cell = design[order], targets[order], row_cell[order]
    edges = np.concatenate(([0], np.flatnonzero(np.diff(row_cell)) + 1, [len(row_cell)]))
    runs = [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]
    combine = membership[row_cell[edges[:-1]]].T.astype(float)             # A, (K, R), runs in row order
    n_members, p = combine.shape[0], design.shape[1]
    width = min(MEMBER_GRAM_BLOCK, p)
    run_buffer = np.empty(len(runs) * width * p)                            # reused by every block J
    member_buffer = np.empty(n_members * width * p)
    grams = np.empty((n_members, p, p))
    for start in range(0, p, width):
        stop = min(start + width, p)
        shape = (stop - start, stop)
        stacked = run_buffer[:len(runs) * shape[0] * stop].reshape(len(runs), -1)
        for rows, block in zip(runs, stacked.reshape(len(runs), *shape)):
            columns = design[rows, start:stop]
            np.matmul(columns.T, design[rows, :start], out=block[:, :start])
            np.matmul(columns.T, columns, out=block[:, start:])              # NumPy's symmetric rank-k update
        combined = np.matmul(combine, stacked, out=member_buffer[:n_members * stacked.shape[1]].reshape(
            n_members, -1)).reshape(n_members, *shape)
        grams[:, start:stop, :stop] = combined
        grams[:, :start, start:stop] = combined[:, :, :start].transpose(0, 2, 1)   # the mirror above the diagonal
    rhs = np.tensordot(combine, np.stack([design[rows].T @ targets[rows] for rows in runs]), axes=1)
    return grams, rhs


def member_gram_batches(n_fits: int, p: int, memory: int | None = None) -> list[slice]:
    """Consecutive slices of ``n_fits`` fits whose p × p float64 Grams fit together in
    ``memory`` bytes (default :data:`MEMBER_GRAM_MEMORY`; one fit per slice at least), of
    balanced sizes: one pass of :func:`member_normal_equations` (≈ one Gram of all rows) per slice."""
    per_pass = max(1, (MEMBER_GRAM_MEMORY if memory is None else memory) // (8 * p * p))
    edges = np.linspace(0, n_fits, -(-n_fits // per_pass) + 1).round().astype(int)   # ceil(n / per_pass) passes
    return [slice(int(start), int(stop)) for start, stop in zip(edges[:-1], edges[1:])]


def member_ridge_weights(design: np.ndarray, targets: np.ndarray, fit_rows: np.ndarray, alpha: float) -> np.ndarray:
    """argmin_w ||X_S w − y_S||² + α||w||² of every fit S (rows where ``fit_rows[k]``, (K, n)
    bool), (K, p[, T]): the normal equations of all fits from shared passes over the rows
    (:func:`member_normal_equations`, as many passes as :func:`member_gram_batches` needs to
    keep the Grams within :data:`MEMBER_GRAM_MEMORY`), each solved by :func:`solve_ridge`.
    Rows sorted by cell of ``fit_rows`` (:func:`membership_cells`) save a gather per pass."""
    fit_rows = np.asarray(fit_rows, dtype=bool)
    weights = []
    for batch in member_gram_batches(len(fit_rows), design.shape[1]):
        grams, rhs = member_normal_equations(design, targets, fit_rows[batch])
        weights.extend(solve_ridge(gram, b, alpha, overwrite_gram=True) for gram, b in zip(grams, rhs))
    return np.array(weights)


def _symmetric_kernel(design: np.ndarray) -> np.ndarray:
    """X Xᵀ (n × n) of a C-contiguous ``design`` (n, p): the lower triangle by one SYRK on
    Xᵀ (Fortran-ordered, no copy), mirrored block by block (no n × n temporary)."""
    kernel = blas.dsyrk(1.0, design.T, trans=1, lower=1)
    n = kernel.shape[0]
    for start in range(0, n, MEMBER_GRAM_BLOCK):
        stop = min(start + MEMBER_GRAM_BLOCK, n)
        diagonal = np.tril(kernel[start:stop, start:stop])
        kernel[start:stop, start:stop] = diagonal + np.tril(diagonal, -1).T
        kernel[start:stop, stop:] = kernel[stop:, start:stop].T
    return kernel


def _positive_scale(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return np.where(values > 0.0, values, 1.0)


#: Feature scalings of :class:`EquivariantRidge`.
FEATURE_SCALINGS = ("per_feature", "global", "none")


def equivariant_feature_scale(flat_features: np.ndarray, feature_scaling: str) -> np.ndarray:
    """Positive scale per column of (rows, p) features whose rows are the mu components.

    ``per_feature``: RMS of each column; ``global``: the RMS of all entries for every
    column; ``none``: ones. Zero scales (all-zero columns) become 1.
    """
    p = flat_features.shape[1]
    if feature_scaling == "per_feature":
        return _positive_scale(np.sqrt(np.mean(flat_features**2, axis=0)))
    if feature_scaling == "global":
        return np.full(p, float(_positive_scale(np.sqrt(np.mean(flat_features**2)))))
    if feature_scaling == "none":
        return np.ones(p)
    raise ValueError(f"feature_scaling must be one of {FEATURE_SCALINGS}, got {feature_scaling!r}")


class RidgeRegression:
    """Closed-form ridge regression for scalar (or several scalar) targets.

    Parameters
    ----------
    alpha:
        Ridge parameter on the scaled problem (dimensionless; no default here: the training
        config's ``ms_iso.alpha`` is its one home).
    fit_intercept:
        Centre features and targets on their training means (adds an intercept).
    scale_features:
        Divide each feature by its standard deviation (RMS if no intercept).
    standardize_targets:
        Divide targets by their standard deviation (RMS if no intercept).
    """

    def __init__(
        self,
        alpha: float,
        *,
        fit_intercept: bool = True,
        scale_features: bool = True,
        standardize_targets: bool = True,
    ) -> None:
        if alpha < 0:
            raise ValueError("alpha must be >= 0")
        self.alpha = float(alpha)
        self.fit_intercept = bool(fit_intercept)
        self.scale_features = bool(scale_features)
        self.standardize_targets = bool(standardize_targets)
        self._fitted = False

    def get_params(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "fit_intercept": self.fit_intercept,
            "scale_features": self.scale_features,
            "standardize_targets": self.standardize_targets,
        }

    def fit(self, X: np.ndarray, y: np.ndarray) -> "RidgeRegression":
        """X: (n, p) features; y: (n,) or (n, T) targets (any units)."""
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float)
        if X.ndim != 2:
            raise ValueError(f"X must be (n_samples, n_features), got {X.shape}")
        if y.ndim not in (1, 2) or y.shape[0] != X.shape[0]:
            raise ValueError(f"y must be (n_samples,) or (n_samples, n_targets), got {y.shape}")
        self._y_ndim = y.ndim
        Y = y.reshape(len(y), -1)
        if self.fit_intercept:
            self.x_mean_ = X.mean(axis=0)
            self.y_mean_ = Y.mean(axis=0)
        else:
            self.x_mean_ = np.zeros(X.shape[1])
            self.y_mean_ = np.zeros(Y.shape[1])
        Xc = X - self.x_mean_
        Yc = Y - self.y_mean_
        self.x_scale_ = (
            _positive_scale(np.sqrt(np.mean(Xc**2, axis=0))) if self.scale_features else np.ones(X.shape[1])
        )
        self.y_scale_ = (
            _positive_scale(np.sqrt(np.mean(Yc**2, axis=0))) if self.standardize_targets else np.ones(Y.shape[1])
        )
        Xs = Xc / self.x_scale_
        Ys = Yc / self.y_scale_
        self.scaled_weights_ = ridge_weights(Xs, Ys, self.alpha)
        self._fitted = True
        return self

    @property
    def coef_(self) -> np.ndarray:
        """Weights on the raw features, target units per feature unit: (p,) or (p, T)."""
        self._require_fit()
        coef = self.scaled_weights_ * self.y_scale_ / self.x_scale_[:, None]
        return coef[:, 0] if self._y_ndim == 1 else coef

    @property
    def intercept_(self) -> np.ndarray | float:
        """f(0): y_mean - x_mean . coef."""
        self._require_fit()
        coef = self.scaled_weights_ * self.y_scale_ / self.x_scale_[:, None]
        icpt = self.y_mean_ - self.x_mean_ @ coef
        return float(icpt[0]) if self._y_ndim == 1 else icpt

    def _require_fit(self) -> None:
        if not self._fitted:
            raise RuntimeError("model is not fitted")

    def predict(self, X: np.ndarray) -> np.ndarray:
        """f(x) = y_scale (x' . w') + y_mean, shape (n,) or (n, T)."""
        self._require_fit()
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != self.x_mean_.size:
            raise ValueError(f"X must be (n_samples, {self.x_mean_.size}), got {X.shape}")
        out = ((X - self.x_mean_) / self.x_scale_) @ self.scaled_weights_ * self.y_scale_ + self.y_mean_
        return out[:, 0] if self._y_ndim == 1 else out

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(arrays, params) of a fitted model."""
        self._require_fit()
        arrays = {
            "scaled_weights": self.scaled_weights_,
            "x_mean": self.x_mean_,
            "x_scale": self.x_scale_,
            "y_mean": self.y_mean_,
            "y_scale": self.y_scale_,
        }
        params = {
            "class": "RidgeRegression",
            **self.get_params(),
            "n_features": int(self.x_mean_.size),
            "target_ndim": int(self._y_ndim),
        }
        return {k: np.array(v, copy=True) for k, v in arrays.items()}, params

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], params: dict[str, Any]) -> "RidgeRegression":
        if params.get("class", "RidgeRegression") != "RidgeRegression":
            raise ValueError(f"parameters describe a {params.get('class')!r}, not a RidgeRegression")
        model = cls(**{k: params[k] for k in cls(params["alpha"]).get_params() if k in params})
        w = np.asarray(arrays["scaled_weights"], dtype=float)
        model.scaled_weights_ = w.reshape(w.shape[0], -1)
        model.x_mean_ = np.asarray(arrays["x_mean"], dtype=float)
        model.x_scale_ = np.asarray(arrays["x_scale"], dtype=float)
        model.y_mean_ = np.atleast_1d(np.asarray(arrays["y_mean"], dtype=float))
        model.y_scale_ = np.atleast_1d(np.asarray(arrays["y_scale"], dtype=float))
        model._y_ndim = int(params.get("target_ndim", 1))
        model._fitted = True
        return model


class EquivariantRidge:
    """Ridge regression of spherical lambda-tensors with one shared weight per feature.

    Parameters
    ----------
    lam:
        Tensor rank lambda of features and targets (2 for EFG / sigma(2), 1 for sigma(1)).
    alpha:
        Ridge parameter on the scaled problem (dimensionless).
    feature_scaling:
        ``"per_feature"``: divide feature j by s_j = sqrt(mean_{n, mu} X[n, mu, j]^2);
        ``"global"``: divide every feature by s = sqrt(mean_{n, mu, j} X[n, mu, j]^2);
        ``"none"``: raw features (then alpha carries the feature units).
    scale_targets:
        Divide targets by sqrt(mean_{n, mu} y[n, mu]^2) (> 0).
    """

    def __init__(
        self,
        lam: int = 2,
        alpha: float = 1e-6,
        *,
        feature_scaling: str = "per_feature",
        scale_targets: bool = True,
    ) -> None:
        if lam < 0:
            raise ValueError("lam must be >= 0")
        if alpha < 0:
            raise ValueError("alpha must be >= 0")
        if feature_scaling not in FEATURE_SCALINGS:
            raise ValueError(f"feature_scaling must be one of {FEATURE_SCALINGS}, got {feature_scaling!r}")
        self.lam = int(lam)
        self.alpha = float(alpha)
        self.feature_scaling = str(feature_scaling)
        self.scale_targets = bool(scale_targets)
        self._fitted = False
        self.member_scaled_weights_: np.ndarray | None = None
        self.calibration_: float | None = None
        self.calibration_power_, self.calibration_floor_ = 1.0, 0.0
        self.calibration_constant_sigma_: float | None = None  # "power": RMS out-of-sample residual
        self.calibration_shrinkage_weight_: float | None = None  # "power_eiv": w (not in the model file)

    @property
    def n_components(self) -> int:
        return 2 * self.lam + 1

    def get_params(self) -> dict[str, Any]:
        return {
            "lam": self.lam,
            "alpha": self.alpha,
            "feature_scaling": self.feature_scaling,
            "scale_targets": self.scale_targets,
        }

    def _check_X(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        if X.ndim != 3 or X.shape[1] != self.n_components:
            raise ValueError(
                f"features must be (n_samples, {self.n_components}, n_features) for lambda={self.lam}, got {X.shape}"
            )
        if self._fitted and X.shape[2] != self.feature_scale_.size:
            raise ValueError(f"X has {X.shape[2]} features, the model was fitted on {self.feature_scale_.size}")
        return X

    def fit(self, X: np.ndarray, y: np.ndarray, *, member_rows: np.ndarray | None = None,
            calibration: str = "scale") -> "EquivariantRidge":
        """X: (n, 2 lambda + 1, p) spherical features; y: (n, 2 lambda + 1) spherical targets.

        ``member_rows`` (K, n) bool: also fit a committee and its ``calibration``, as
        :meth:`fit_members`, sharing the Gram work with the full fit (in the primal form all
        K + 1 Grams are built together).
        """
        self._fitted = False
        X = self._check_X(X)
        y = np.asarray(y, dtype=float)
        if y.shape != X.shape[:2]:
            raise ValueError(f"targets must be (n_samples, {self.n_components}), got {y.shape}")
        n, k, p = X.shape
        self.member_scaled_weights_ = self.calibration_ = None
        self.calibration_power_, self.calibration_floor_ = 1.0, 0.0
        self.calibration_shrinkage_weight_ = None
        flat = X.reshape(n * k, p)  # the mu components act as extra samples
        self.feature_scale_ = equivariant_feature_scale(flat, self.feature_scaling)
        self.target_scale_ = float(_positive_scale(np.sqrt(np.mean(y**2)))) if self.scale_targets else 1.0
        if member_rows is not None:
            self._fit_committee(X, y, member_rows, with_full=True, calibration=calibration)
        else:
            self.scaled_weights_ = ridge_weights(flat / self.feature_scale_, y.reshape(n * k) / self.target_scale_,
                                                 self.alpha)
        self._fitted = True
        return self

    def _require_fit(self) -> None:
        if not self._fitted:
            raise RuntimeError("model is not fitted")

    def fit_members(self, X: np.ndarray, y: np.ndarray, member_rows: np.ndarray,
                    calibration: str = "scale") -> "EquivariantRidge":
        """Fit a committee on the fitted model's features X (n, 2λ+1, p) and targets y (n, 2λ+1):
        member k on the atoms where ``member_rows[k]`` ((K, n) bool), and the calibration
        (``calibration``: "scale", "power" or "power_eiv", see :func:`~ase_mlnmr.models.committee.fit_calibration`)
        from the atoms each member did not see."""
        self._require_fit()
        X = self._check_X(X)
        y = np.asarray(y, dtype=float)
        if y.shape != X.shape[:2]:
            raise ValueError(f"targets must be {X.shape[:2]}, got {y.shape}")
        return self._fit_committee(X, y, member_rows, with_full=False, calibration=calibration)

    def _fit_committee(self, X: np.ndarray, y: np.ndarray, member_rows: np.ndarray, with_full: bool,
                       calibration: str = "scale") -> "EquivariantRidge":
        """Members (and with ``with_full`` the full model first) on the scaled problem.

        The calibration's refits of the full model (:func:`~ase_mlnmr.models.committee.calibration_fit_rows`)
        are fitted together with the members: in the primal form (p features ≤ the rows of
        every member) their Grams come out of the same pass over the rows
        (:func:`member_normal_equations`); in the dual form (p ≥ all rows) every fit S solves
        (K_SS + αI) β = y_S on a principal block of the one kernel matrix K = XXᵀ of all rows
        (w = X_Sᵀ β, predictions K_·S β), so no fit builds a Gram of its own. In between, each
        fit solves its own problem in its smaller form (:func:`ridge_weights`).
        """
        member_rows = np.asarray(member_rows, dtype=bool)
        n, k, p = X.shape
        if member_rows.ndim != 2 or member_rows.shape[1] != n:
            raise ValueError(f"member_rows must be (n_members, {n}), got {member_rows.shape}")
        # atoms sorted by cell (the calibration is a sum over atoms): member_normal_equations needs no gather
        order = np.argsort(membership_cells(member_rows)[1], kind="stable")
        member_rows, y = member_rows[:, order], y[order]
        refit_rows = calibration_fit_rows(calibration, member_rows)
        fits = np.vstack([np.ones((int(with_full), n), dtype=bool), member_rows, refit_rows])
        Xs = X[order]
        Xs /= self.feature_scale_
        flat, ys = Xs.reshape(n * k, p), (y / self.target_scale_).reshape(n * k)
        if p <= k * member_rows.sum(axis=1).min():   # primal for every fit: Grams built together
            weights = member_ridge_weights(flat, ys, np.repeat(fits, k, axis=1), self.alpha)
            predictions = (flat @ weights[int(with_full):].T).T
        elif p >= n * k:   # dual for every fit: principal blocks of one kernel matrix (smaller than one p × p Gram)
            kernel = _symmetric_kernel(flat)
            betas = np.zeros((len(fits), n * k))   # zero outside each fit's rows
            for beta, rows in zip(betas, np.repeat(fits, k, axis=1)):
                beta[rows] = solve_ridge(kernel[np.ix_(rows, rows)], ys[rows], self.alpha, overwrite_gram=True)
            weights = betas[:len(fits) - len(refit_rows)] @ flat   # w = X_Sᵀ β (the refits need no weights)
            predictions = betas[int(with_full):] @ kernel           # K_·S β (K symmetric)
        else:   # in between: each fit in its own smaller form
            weights = np.array([ridge_weights(Xs[rows].reshape(-1, p), ys.reshape(n, k)[rows].reshape(-1), self.alpha)
                                for rows in fits])
            predictions = (flat @ weights[int(with_full):].T).T
        if with_full:
            self.scaled_weights_ = weights[0]
        n_members = len(member_rows)
        predictions = predictions.reshape(-1, n, k) * self.target_scale_
        refits = {rows.tobytes(): prediction for rows, prediction in zip(refit_rows, predictions[n_members:])}
        fitted = fit_calibration(calibration, predictions[:n_members], y, member_rows,
                                 lambda rows: refits[rows.tobytes()])
        (self.calibration_, self.calibration_power_, self.calibration_floor_, self.calibration_constant_sigma_) = fitted
        self.calibration_shrinkage_weight_ = fitted.shrinkage_weight
        self.member_scaled_weights_ = recentred(weights[int(with_full):int(with_full) + n_members],
                                                self.scaled_weights_)
        return self

    @property
    def committee_size(self) -> int:
        """Number of committee members (0 without a committee)."""
        return 0 if self.member_scaled_weights_ is None else int(self.member_scaled_weights_.shape[0])

    @property
    def member_coef_(self) -> np.ndarray:
        """Raw weights of every member, (K, p), as :attr:`coef_`."""
        if not self.committee_size:
            raise RuntimeError("the model has no committee (train with a committee section)")
        return self.member_scaled_weights_ * self.target_scale_ / self.feature_scale_

    def predict_members(self, X: np.ndarray) -> np.ndarray:
        """Spherical components of every member, (K, n, 2λ+1)."""
        X = self._check_X(X)
        return np.einsum("nmp,kp->knm", X, self.member_coef_)

    def predict_std(self, X: np.ndarray) -> np.ndarray:
        """Calibrated uncertainty alpha * std over the members of each spherical component, (n, 2λ+1)."""
        return member_spread(self.predict_members(X), self.calibration_, self.calibration_power_,
                             self.calibration_floor_)

    @property
    def coef_(self) -> np.ndarray:
        """Raw weights w_j with y_mu = sum_j w_j X[:, mu, j] (target units per feature unit).

        This vector can be contracted with the Clebsch-Gordan coefficients of the
        descriptor into weights on the density expansion coefficients.
        """
        self._require_fit()
        return self.scaled_weights_ * self.target_scale_ / self.feature_scale_

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Spherical components y_mu = sum_j w_j X[:, mu, j], shape (n, 2 lambda + 1)."""
        self._require_fit()
        X = self._check_X(X)
        return X @ self.coef_

    def predict_cartesian(self, X: np.ndarray) -> np.ndarray:
        """Cartesian tensors (n, 3, 3): symmetric traceless (lambda = 2) or antisymmetric
        (lambda = 1, components in the (y, z, x) order of ``spherical_tensors``)."""
        comps = self.predict(X)
        if self.lam == 2:
            return l2_to_symmetric_traceless(comps)
        if self.lam == 1:
            return vector_to_antisymmetric(comps)
        raise ValueError("Cartesian reconstruction is defined for lambda = 1 and 2 only")

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(arrays, params) of a fitted model; ``arrays['coef']`` is :attr:`coef_`."""
        self._require_fit()
        arrays = {
            "coef": self.coef_,
            "scaled_weights": self.scaled_weights_,
            "feature_scale": self.feature_scale_,
            "target_scale": np.array(self.target_scale_),
        }
        params = {"class": "EquivariantRidge", **self.get_params(), "n_features": int(self.feature_scale_.size)}
        if self.committee_size:
            arrays["member_scaled_weights"] = self.member_scaled_weights_
            params.update(calibration_params(self.calibration_, self.calibration_power_, self.calibration_floor_))
        return {k: np.array(v, copy=True) for k, v in arrays.items()}, params

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], params: dict[str, Any]) -> "EquivariantRidge":
        if params.get("class", "EquivariantRidge") != "EquivariantRidge":
            raise ValueError(f"parameters describe a {params.get('class')!r}, not an EquivariantRidge")
        params = dict(params)
        if "scale_features" in params:  # files written before feature_scaling existed
            params.setdefault("feature_scaling", "per_feature" if params.pop("scale_features") else "none")
        model = cls(**{k: params[k] for k in cls().get_params() if k in params})
        model.scaled_weights_ = np.asarray(arrays["scaled_weights"], dtype=float)
        model.feature_scale_ = np.asarray(arrays["feature_scale"], dtype=float)
        model.target_scale_ = float(np.asarray(arrays["target_scale"]))
        if model.scaled_weights_.shape != model.feature_scale_.shape:
            raise ValueError("inconsistent EquivariantRidge arrays")
        if "member_scaled_weights" in arrays:  # files written before committees have none
            members = np.asarray(arrays["member_scaled_weights"], dtype=float)
            if members.ndim != 2 or members.shape[1:] != model.scaled_weights_.shape:
                raise ValueError("inconsistent EquivariantRidge arrays (committee member weights)")
            model.member_scaled_weights_ = members
            model.calibration_, model.calibration_power_, model.calibration_floor_ = calibration_from_params(params)
        model._fitted = True
        return model
