"""Least-squares support vector regression: kernel ridge with a Nyström basis.

Model (Charpentier 2025, eq. 4, reduced to inducing points Z subset of the training X)::

    k(x, y) = exp(-|x - y|^2 / (2 l^2))             (kernel="gaussian", default)
    k(x, y) = (x̂ . ŷ)^zeta,  x̂ = x / |x|             (kernel="dot_product")
    w       = (K_ZX K_XZ + eps K_ZZ)^-1 K_ZX y_s    (y_s = (y - mean) / std)
    f(x)    = (k_xZ w) * std + mean

Both kernels are normalised, k(x, x) = 1, so the Nyström residual below lies in [0, 1].

Gaussian kernel: features are preprocessed first: optionally each row is normalised to
unit length, then centred on the training mean (harmless for a translation-invariant
kernel, better rounding in |a|^2 + |b|^2 - 2 a.b) and optionally divided per feature by
the training standard deviation. ``length_scale`` is in the units of the preprocessed
features.

Dot-product kernel (the usual SOAP kernel, on unit-normalised power spectra): each raw
feature is optionally divided by its training standard deviation (no centring: the
kernel is not translation invariant; off by default), then every row is scaled to unit
length; ``zeta`` is a positive integer (an integer power of a positive semi-definite
kernel is one, also where x̂ . ŷ < 0). An all-zero feature row (a centre without
neighbours) has no direction: it is given k(0, 0) = 1 and k(0, y) = 0 for y != 0 (the
sum of the normalised kernel and the indicator kernel [x = 0][y = 0], still positive
semi-definite), so it counts as fully out of domain unless such rows were trained on.

Inducing points: greedy pivoted (incomplete) Cholesky of K_XX without forming K_XX
(:func:`pivoted_cholesky`). Solver: the ICD gives a factor L (N x m) with, exactly at the
pivots, K_XZ = L L_Z^T and K_ZZ = L_Z L_Z^T (L_Z = rows of L at Z, lower triangular with
diagonal sqrt(pivot residual) > 0). Hence

    K_ZX K_XZ + eps K_ZZ = L_Z (L^T L + eps I) L_Z^T ,   K_ZX y = L_Z L^T y
    =>  w = L_Z^-T beta,   beta = (L^T L + eps I)^-1 L^T y .

beta is an ordinary ridge problem in the Nyström feature space, solved through the
eigendecomposition of the m x m Gram matrix L^T L (eigenvalues clipped at 0, so the
system matrix is >= eps > 0 and no jitter is needed; K_ZZ is never inverted, the ICD
pivoting keeps L_Z well conditioned). The eigendecomposition is kept after ``fit`` so
that :meth:`NystromKernelRidge.set_ridge` re-solves for another eps in O(m^2).

Out-of-domain score: the Nyström residual r(x) = k(x, x) - k_xZ K_ZZ^-1 k_Zx
= 1 - |L_Z^-1 k_Zx|^2 in [0, 1]; ~0 on training points, -> 1 far from the data. Over the
first p pivots only (``rank=p``) it is the residual of the Nyström basis of those p points:
the leading p x p block of L_Z is their Cholesky factor (a prefix of the same pivoted
factorisation), so the cost drops from m^2 to p^2 per sample.

Committee (``fit(..., member_rows=...)``, :mod:`ase_mlnmr.models.committee`): member k keeps
the inducing points, L and the scalings and solves the same ridge problem on its rows S_k
only, beta_k = (L_S^T L_S + eps I)^-1 L_S^T y_S, w_k = L_Z^-T beta_k; its predictions on the
training rows are L beta_k (no kernel evaluation). The Grams L_S^T L_S of all members (and of
the calibration's refits) are built together in one pass over the rows of L, at about the
cost of one L^T L (``linear.member_ridge_weights``; more passes if their m x m Grams exceed
``linear.MEMBER_GRAM_MEMORY``). The members are re-centred on the full weights;
``member_weights_`` (K, m, T) are extra weight columns on the same kernel block.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.linalg import blas, eigh, solve_triangular

from .committee import (calibration_fit_rows, calibration_from_params, calibration_params, fit_calibration,
                        member_spread, recentred)
from .linear import member_ridge_weights, membership_cells

__all__ = ["NystromKernelRidge", "PivotedCholesky", "pivoted_cholesky", "held_out_residuals", "KERNELS"]

#: Kernels understood by :func:`pivoted_cholesky` and :class:`NystromKernelRidge`.
KERNELS = ("gaussian", "dot_product")

#: Pivots whose residual diagonal is below this are numerically zero (kernel scale is 1).
PIVOT_FLOOR = 1e-10

#: Rows per chunk when computing new Cholesky columns (keeps temporaries cache-sized).
_ROW_CHUNK = 4096


def _sq_norms(A: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", A, A)


def _kernel_block(
    A: np.ndarray,
    B: np.ndarray,
    a2: np.ndarray,
    b2: np.ndarray,
    length_scale: float,
    kernel: str,
    zeta: int,
) -> np.ndarray:
    """Kernel matrix of all rows a of A and b of B, shape (len(A), len(B)).

    ``gaussian``: exp(-|a - b|^2 / (2 l^2)). ``dot_product``: (a . b)^zeta for rows of unit
    length (``a2``, ``b2`` = 1), plus 1 where both rows are zero (``a2``, ``b2`` = 0).
    """
    D = A @ B.T
    if kernel == "dot_product":
        np.clip(D, -1.0, 1.0, out=D)
        if zeta != 1:
            np.power(D, float(zeta), out=D)
        zero_a, zero_b = a2 < 0.5, b2 < 0.5
        if zero_a.any() and zero_b.any():
            D[np.ix_(zero_a, zero_b)] = 1.0
        return D
    D *= -2.0
    D += a2[:, None]
    D += b2[None, :]
    np.maximum(D, 0.0, out=D)
    D *= -0.5 / length_scale**2
    np.exp(D, out=D)
    return D


def _default(key: str, value: Any) -> Any:
    """``value``, or if None the default of ``ms_iso.<key>`` in the training config, the one
    home of the defaults (imported here: the config module imports the models)."""
    if value is not None:
        return value
    from ..training.config import DEFAULT_CONFIG

    return DEFAULT_CONFIG["ms_iso"][key]


def _check_kernel(kernel: str, zeta: Any) -> tuple[str, int]:
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; expected one of {KERNELS}")
    if isinstance(zeta, (bool, np.bool_)) or not float(zeta).is_integer() or int(zeta) < 1:
        raise ValueError(f"zeta must be an integer >= 1, got {zeta!r}")
    return kernel, int(zeta)


@dataclass
class PivotedCholesky:
    """Result of :func:`pivoted_cholesky`.

    ``factor`` L (N x m, Fortran order) with K_XX ~ L L^T and, exactly at the pivots,
    K_{X,pivots} = L L[pivots]^T; ``residual`` the residual diagonal
    diag(K - L L^T) (N,); ``trace_history[t]`` = trace(residual)/N after t+1 pivots;
    ``n_exact``: the first ``n_exact`` pivots are certified identical to the one-at-a-time
    greedy choice (up to ties), see :func:`pivoted_cholesky`.
    """

    pivots: np.ndarray
    factor: np.ndarray
    residual: np.ndarray
    trace_history: np.ndarray
    n_exact: int

    @property
    def rank(self) -> int:
        return int(self.pivots.size)


def pivoted_cholesky(
    X: np.ndarray,
    length_scale: float,
    max_rank: int,
    tol: float = 0.0,
    *,
    block_size: int = 128,
    pool_factor: int = 4,
    kernel: str | None = None,
    zeta: int | None = None,
) -> PivotedCholesky:
    """Greedy pivoted (incomplete) Cholesky of the kernel matrix K_XX, never forming K_XX.

    ``kernel``: ``"gaussian"`` (``length_scale`` l) or ``"dot_product"`` ((x . y)^zeta; the
    rows of X must then have unit length or be all zero, see the module docstring;
    ``length_scale`` is not used); not given: the ``ms_iso`` defaults of the training
    config. Both have k(x, x) = 1.

    Classic algorithm: residual diagonal d = 1; repeat: pivot p = argmax d, new column
    l = (k(X, x_p) - L L[p]^T) / sqrt(d_p), d -= l^2; stop after ``max_rank`` pivots or
    when trace(d)/N <= ``tol`` (the stop is exact: the block is truncated at the first
    pivot that reaches the tolerance).

    Blocked variant (``block_size`` b > 1), so that the O(N m^2) work runs as
    matrix-matrix products instead of one N x j matrix-vector product per pivot:
    take the c = pool_factor*b points with the largest residual (always including
    argmax d), form their c x c residual kernel K_CC - L_C L_C^T, run the greedy
    pivoted Cholesky inside this pool for b steps, then compute the b new columns for
    all N points at once, R = K_XB - L L_B^T, L_new = R C_B^-T (C_B the Cholesky factor of
    R_BB). A pool pivot whose residual is >= the largest residual outside the pool is the
    true greedy choice (residuals only decrease); ``n_exact`` counts the leading pivots
    certified that way. ``block_size=1`` is the exact classic algorithm.

    Cost (m pivots, D features, b = block_size, p = pool_factor): about N m^2 flops for
    the column updates (matrix-matrix), N m D for the kernel columns (N m exponentials),
    N m b for the triangular solves and p^2 b m^2 for the pools (small while p^2 b << N).
    Memory: L, N x m float64 (1.2 GB for N = 1e5, m = 1500), plus O(p^2 b^2 + 4096 b).
    Units: X is dimensionless here (preprocessed features), ``length_scale`` in the same.
    """
    kernel, zeta = _check_kernel(_default("kernel", kernel), _default("zeta", zeta))
    X = np.ascontiguousarray(X, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
    n = X.shape[0]
    if n == 0:
        raise ValueError("pivoted_cholesky needs at least one sample")
    if length_scale <= 0:
        raise ValueError("length_scale must be > 0")
    m_max = int(min(max_rank, n))
    if m_max < 1:
        raise ValueError("max_rank must be >= 1")
    b_max = max(1, int(block_size))
    x2 = _sq_norms(X)
    if kernel == "dot_product":
        if not np.all((np.abs(x2 - 1.0) < 1e-6) | (x2 == 0.0)):
            raise ValueError("the dot_product kernel needs rows of unit length (or all zero)")
        x2 = np.where(x2 == 0.0, 0.0, 1.0)
    kern = {"length_scale": length_scale, "kernel": kernel, "zeta": zeta}
    L = np.zeros((n, m_max), order="F")
    d = np.ones(n)
    pivots = np.empty(m_max, dtype=np.int64)
    history: list[np.ndarray] = []
    n_exact = 0
    exact_so_far = True
    j = 0
    trace = float(n)
    while j < m_max and trace / n > tol:
        b = min(b_max, m_max - j)
        c = min(n, max(b, pool_factor * b))
        top = int(np.argmax(d))
        if c < n:
            part = np.argpartition(-d, c)
            pool = part[:c].copy()
            bound = float(d[part[c]])
            if top not in pool:
                pool[np.argmin(d[pool])] = top
        else:
            pool = np.arange(n)
            bound = -np.inf
        pool = pool[np.lexsort((pool, -d[pool]))]  # descending residual, ties by index

        # Greedy pivoted Cholesky inside the pool, left-looking, on S = K_CC - L_C L_C^T.
        Lc = L[pool, :j]
        S = _kernel_block(X[pool], X[pool], x2[pool], x2[pool], **kern)
        if j:
            S -= Lc @ Lc.T
        diag_s = d[pool].copy()  # same residuals as diag(S), without rounding drift
        Lp = np.zeros((pool.size, b))
        chosen: list[int] = []
        for t in range(b):
            q = int(np.argmax(diag_s))
            piv = float(diag_s[q])
            if piv <= PIVOT_FLOOR:
                break
            if exact_so_far and piv >= bound:
                n_exact += 1
            else:
                exact_so_far = False
            col = S[:, q] - Lp[:, :t] @ Lp[q, :t]
            col /= np.sqrt(piv)
            col[q] = np.sqrt(piv)
            Lp[:, t] = col
            diag_s -= col**2
            diag_s[q] = -np.inf
            chosen.append(q)
        nb = len(chosen)
        if nb == 0:
            break
        block = pool[chosen]
        CB = np.tril(Lp[chosen, :nb])

        # New columns for all N points: R = K_XB - L L_B^T ; L_new = R C_B^-T, computed
        # in row chunks (cache-sized temporaries) straight into L[:, j:j+nb].
        Lnew = L[:, j : j + nb]
        XB, x2B, LB = X[block], x2[block], L[block, :j]
        for start in range(0, n, _ROW_CHUNK):
            stop = min(n, start + _ROW_CHUNK)
            R = _kernel_block(X[start:stop], XB, x2[start:stop], x2B, **kern)
            if j:
                R -= L[start:stop, :j] @ LB.T
            Lnew[start:stop] = solve_triangular(CB, R.T, lower=True, check_finite=False).T
        Lnew[block] = CB
        if j:
            Lnew[pivots[:j]] = 0.0

        col_sq = np.einsum("ij,ij->j", Lnew, Lnew)
        traces = trace - np.cumsum(col_sq)
        below = np.flatnonzero(traces / n <= tol)
        keep = int(below[0]) + 1 if below.size else nb
        if keep < nb:
            Lnew[:, keep:] = 0.0
            Lnew = Lnew[:, :keep]
            block = block[:keep]
            n_exact = min(n_exact, j + keep)
        pivots[j : j + keep] = block
        d -= np.einsum("ij,ij->i", Lnew, Lnew)
        np.maximum(d, 0.0, out=d)
        d[pivots[: j + keep]] = 0.0
        history.append(np.maximum(traces[:keep], 0.0) / n)
        j += keep
        trace = float(d.sum())
        if keep < nb:
            break
    return PivotedCholesky(
        pivots=pivots[:j].copy(),
        factor=L[:, :j],
        residual=d,
        trace_history=np.concatenate(history) if history else np.zeros(0),
        n_exact=min(n_exact, j),
    )


class NystromKernelRidge:
    """Kernel ridge regression (LSSVR) on a pivoted-Cholesky Nyström basis.

    Fit cost: the pivoted Cholesky (:func:`pivoted_cholesky`, ~N m^2 flops), the Gram
    matrix L^T L (~N m^2) and its eigendecomposition (O(m^3)); prediction O(m D) per
    sample, out_of_domain O(m^2) per sample (triangular solve).

    Parameters
    ----------
    The settings the training config also has (``n_inducing``, ``ridge``,
    ``normalize_features``, ``kernel``, ``zeta``) default to its ``ms_iso`` defaults
    (:data:`ase_mlnmr.training.config.SCHEMA`, their one home) when not given.

    n_inducing:
        Maximum number of inducing points Nx (clipped to the number of samples).
    length_scale:
        l of k(x, y) = exp(-|x - y|^2 / (2 l^2)), in preprocessed-feature units: required
        by the Gaussian kernel (the training config derives it from the data); ignored by
        the dot-product kernel (stored as 1 when not given).
    ridge:
        eps in w = (K_ZX K_XZ + eps K_ZZ)^-1 K_ZX y_s (y_s standardised, dimensionless).
    tol:
        Stop adding inducing points when the mean residual diagonal trace(K - LL^T)/N
        falls to ``tol``.
    standardize_features:
        Divide each feature by its training standard deviation. Gaussian kernel: features
        are always centred on the training mean as well; default True. Dot-product kernel:
        no centring, applied before the unit-length scaling; default False.
    normalize_features:
        Scale each raw feature vector to unit Euclidean length (Gaussian kernel: before
        standardising). Always on for the dot-product kernel.
    kernel:
        ``"gaussian"`` or ``"dot_product"``: k(x, y) = (x̂ . ŷ)^zeta on the
        unit-normalised (optionally standardised) features.
    zeta:
        Integer exponent >= 1 of the dot-product kernel (ignored by the Gaussian kernel).
    standardize_targets:
        Fit (y - mean)/std; otherwise mean 0, std 1.
    block_size, pool_factor:
        Blocking of the pivoted Cholesky (see :func:`pivoted_cholesky`).
    chunk_size:
        Rows per chunk in predict / out_of_domain (memory ~ chunk_size * Nx * 8 bytes).
    """

    def __init__(
        self,
        n_inducing: int | None = None,
        length_scale: float | None = None,
        ridge: float | None = None,
        tol: float = 1e-8,
        *,
        standardize_features: bool | None = None,
        normalize_features: bool | None = None,
        standardize_targets: bool = True,
        block_size: int = 128,
        pool_factor: int = 4,
        chunk_size: int = 4096,
        kernel: str | None = None,
        zeta: int | None = None,
    ) -> None:
        n_inducing, ridge = _default("n_inducing", n_inducing), _default("ridge", ridge)
        normalize_features = _default("normalize_features", normalize_features)
        self.kernel, self.zeta = _check_kernel(_default("kernel", kernel), _default("zeta", zeta))
        dot = self.kernel == "dot_product"
        if length_scale is None:
            if not dot:
                raise ValueError("the Gaussian kernel needs a length_scale (the training config takes "
                                 "ms_iso.length_scale_factor × the median feature distance)")
            length_scale = 1.0
        if n_inducing < 1:
            raise ValueError("n_inducing must be >= 1")
        if length_scale <= 0:
            raise ValueError("length_scale must be > 0")
        if ridge < 0:
            raise ValueError("ridge must be >= 0")
        self.n_inducing = int(n_inducing)
        self.length_scale = float(length_scale)
        self.ridge = float(ridge)
        self.tol = float(tol)
        self.standardize_features = (not dot) if standardize_features is None else bool(standardize_features)
        self.normalize_features = True if dot else bool(normalize_features)
        self.standardize_targets = bool(standardize_targets)
        self.block_size = int(block_size)
        self.pool_factor = int(pool_factor)
        self.chunk_size = int(chunk_size)
        self._fitted = False
        self._solver: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.member_weights_: np.ndarray | None = None
        self.calibration_: float | None = None
        self.calibration_power_, self.calibration_floor_ = 1.0, 0.0
        self.calibration_constant_sigma_: float | None = None  # "power": RMS out-of-sample residual
        self.calibration_shrinkage_weight_: float | None = None  # "power_eiv": w (not in the model file)

    # ------------------------------------------------------------------ preprocessing
    def _check_X(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
        if self._fitted and X.shape[1] != self.x_mean_.size:
            raise ValueError(f"X has {X.shape[1]} features, the model was fitted on {self.x_mean_.size}")
        if not np.all(np.isfinite(X)):
            raise ValueError("X contains NaN or infinite values")
        return X

    def _normalise_rows(self, X: np.ndarray) -> np.ndarray:
        if not self.normalize_features:
            return X
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        return X / np.where(norms > 0.0, norms, 1.0)

    def _preprocess(self, X: np.ndarray) -> np.ndarray:
        if self.kernel == "dot_product":  # x / scale, then unit length (x_mean_ is 0)
            return self._normalise_rows(X / self.x_scale_)
        return (self._normalise_rows(X) - self.x_mean_) / self.x_scale_

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Preprocessed features: Gaussian ((x / |x| if normalize) - mean) / scale;
        dot product (x / scale) / |x / scale|."""
        self._require_fit()
        return self._preprocess(self._check_X(X))

    # ------------------------------------------------------------------------- fit
    def fit(self, X: np.ndarray, y: np.ndarray, *, member_rows: np.ndarray | None = None,
            calibration: str = "scale") -> "NystromKernelRidge":
        """Select inducing points by pivoted Cholesky and solve for the weights.

        X: (N, D) features; y: (N,) or (N, T) targets (any units; predictions same units).
        ``member_rows`` (K, N) bool: also fit a committee, member k on the rows where
        ``member_rows[k]`` (see :func:`~ase_mlnmr.models.committee.committee_design`), and
        its calibration (``calibration``: "scale", "power" or "power_eiv", see
        :func:`~ase_mlnmr.models.committee.fit_calibration`) from the rows each member did not see.
        """
        self._fitted = False
        self.member_weights_ = self.calibration_ = None
        self.calibration_power_, self.calibration_floor_ = 1.0, 0.0
        self.calibration_shrinkage_weight_ = None
        X = self._check_X(X)
        y = np.asarray(y, dtype=float)
        if y.ndim not in (1, 2) or y.shape[0] != X.shape[0]:
            raise ValueError(f"y must be (n_samples,) or (n_samples, n_targets), got {y.shape}")
        if not np.all(np.isfinite(y)):
            raise ValueError("y contains NaN or infinite values")
        self._y_ndim = y.ndim
        Y = y.reshape(y.shape[0], -1)

        dot = self.kernel == "dot_product"
        Xn = X if dot else self._normalise_rows(X)
        self.x_mean_ = np.zeros(X.shape[1]) if dot else Xn.mean(axis=0)
        if self.standardize_features:
            std = Xn.std(axis=0)
            self.x_scale_ = np.where(std > 0.0, std, 1.0)
        else:
            self.x_scale_ = np.ones(X.shape[1])
        Xt = self._preprocess(X)

        self.y_mean_ = Y.mean(axis=0) if self.standardize_targets else np.zeros(Y.shape[1])
        if self.standardize_targets:
            ystd = Y.std(axis=0)
            self.y_std_ = np.where(ystd > 0.0, ystd, 1.0)
        else:
            self.y_std_ = np.ones(Y.shape[1])
        Ys = (Y - self.y_mean_) / self.y_std_

        icd = pivoted_cholesky(
            Xt,
            self.length_scale,
            self.n_inducing,
            self.tol,
            block_size=self.block_size,
            pool_factor=self.pool_factor,
            kernel=self.kernel,
            zeta=self.zeta,
        )
        L = icd.factor
        self.inducing_indices_ = icd.pivots
        self.inducing_points_ = Xt[icd.pivots].copy()
        self.chol_zz_ = np.tril(np.asarray(L[icd.pivots]))  # L_Z, K_ZZ = L_Z L_Z^T
        self.train_residual_ = icd.residual
        self.trace_history_ = icd.trace_history
        self.n_exact_pivots_ = icd.n_exact
        self.n_train_ = X.shape[0]

        # L^T L with the symmetric rank-k update (half the flops of a general product).
        gram = blas.dsyrk(1.0, L, trans=1, lower=0) if L.shape[1] else np.zeros((0, 0))
        gram = np.triu(gram) + np.triu(gram, 1).T
        rhs = L.T @ Ys
        evals, evecs = eigh(gram, check_finite=False)
        np.maximum(evals, 0.0, out=evals)
        self._solver = (evals, evecs, evecs.T @ rhs)
        self._fitted = True
        self._solve()
        if member_rows is not None:
            self._fit_members(L, Ys, np.asarray(member_rows, dtype=bool), calibration)
        return self

    def _fit_members(self, L: np.ndarray, Ys: np.ndarray, member_rows: np.ndarray, calibration: str) -> None:
        """Member weights on the shared factor L (N x m) and the calibration.

        Every member k and every calibration refit (the full model on the rows outside a
        calibration fold, :func:`~ase_mlnmr.models.committee.calibration_fit_rows`) solves
        (L_SᵀL_S + εI) β = L_SᵀY_S on its rows S; their Grams come out of shared passes over
        the rows of L sorted by cell (:func:`~ase_mlnmr.models.linear.member_ridge_weights`),
        at about the cost of one Gram LᵀL per pass instead of K/2 of it for the members alone.
        """
        if member_rows.ndim != 2 or member_rows.shape[1] != L.shape[0]:
            raise ValueError(f"member_rows must be (n_members, {L.shape[0]}), got {member_rows.shape}")
        refit_rows = calibration_fit_rows(calibration, member_rows)
        fits = np.vstack([member_rows, refit_rows])
        order = np.argsort(membership_cells(fits)[1], kind="stable")   # one gather of L, not one per pass
        betas = member_ridge_weights(L[order], Ys[order], fits[:, order], max(self.ridge, PIVOT_FLOOR))

        def predict(beta: np.ndarray) -> np.ndarray:
            return L @ beta * self.y_std_ + self.y_mean_

        n_members = len(member_rows)
        refits = {rows.tobytes(): predict(beta) for rows, beta in zip(refit_rows, betas[n_members:])}
        targets = Ys * self.y_std_ + self.y_mean_
        fitted = fit_calibration(calibration, np.array([predict(beta) for beta in betas[:n_members]]), targets,
                                 member_rows, lambda rows: refits[rows.tobytes()])
        (self.calibration_, self.calibration_power_, self.calibration_floor_, self.calibration_constant_sigma_) = fitted
        self.calibration_shrinkage_weight_ = fitted.shrinkage_weight
        members = [solve_triangular(self.chol_zz_, beta, lower=True, trans="T", check_finite=False)
                   for beta in betas[:n_members]]
        self.member_weights_ = recentred(np.array(members), self.weights_)

    def _solve(self) -> None:
        evals, evecs, proj = self._solver  # type: ignore[misc]
        denom = evals + self.ridge
        if np.any(denom <= 0.0):
            raise np.linalg.LinAlgError("singular system: use ridge > 0")
        beta = evecs @ (proj / denom[:, None])
        self.weights_ = solve_triangular(self.chol_zz_, beta, lower=True, trans="T", check_finite=False)

    def set_ridge(self, ridge: float) -> "NystromKernelRidge":
        """Re-solve the weights for another eps, reusing the fitted Gram eigenbasis."""
        if self._solver is None:
            raise RuntimeError("set_ridge needs a model fitted in this session (not loaded from arrays)")
        if self.member_weights_ is not None:
            raise RuntimeError("set_ridge would leave the committee members at the old ridge: refit instead")
        if ridge < 0:
            raise ValueError("ridge must be >= 0")
        self.ridge = float(ridge)
        self._solve()
        return self

    # --------------------------------------------------------------------- predict
    def _require_fit(self) -> None:
        if not self._fitted:
            raise RuntimeError("model is not fitted")

    @property
    def n_inducing_(self) -> int:
        """Number of inducing points actually selected."""
        self._require_fit()
        return int(self.inducing_points_.shape[0])

    def _chunks(self, Xt: np.ndarray):
        z2 = _sq_norms(self.inducing_points_)
        step = max(1, self.chunk_size)
        for start in range(0, Xt.shape[0], step):
            A = Xt[start : start + step]
            yield start, _kernel_block(A, self.inducing_points_, _sq_norms(A), z2, self.length_scale,
                                       self.kernel, self.zeta)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """f(x) = (k_xZ w) * std + mean, shape (n,) or (n, T) as the fitted targets."""
        Xt = self.transform(X)
        out = np.empty((Xt.shape[0], self.weights_.shape[1]))
        for start, K in self._chunks(Xt):
            out[start : start + K.shape[0]] = K @ self.weights_
        out = out * self.y_std_ + self.y_mean_
        return out[:, 0] if self._y_ndim == 1 else out

    @property
    def committee_size(self) -> int:
        """Number of committee members (0 without a committee)."""
        return 0 if self.member_weights_ is None else int(self.member_weights_.shape[0])

    def predict_members(self, X: np.ndarray) -> np.ndarray:
        """Member predictions (K, n) or (K, n, T): (k_xZ w_k) * std + mean, one kernel block."""
        if not self.committee_size:
            raise RuntimeError("the model has no committee (train with a committee section)")
        Xt = self.transform(X)
        K_, m, T = self.member_weights_.shape
        columns = self.member_weights_.transpose(1, 0, 2).reshape(m, K_ * T)
        out = np.empty((Xt.shape[0], K_, T))
        for start, K in self._chunks(Xt):
            out[start : start + K.shape[0]] = (K @ columns).reshape(-1, K_, T)
        out = (out * self.y_std_ + self.y_mean_).transpose(1, 0, 2)
        return out[..., 0] if self._y_ndim == 1 else out

    def predict_std(self, X: np.ndarray) -> np.ndarray:
        """Calibrated uncertainty alpha * std over the members, shape as :meth:`predict`."""
        return member_spread(self.predict_members(X), self.calibration_, self.calibration_power_,
                             self.calibration_floor_)

    def out_of_domain(self, X: np.ndarray, rank: int | None = None) -> np.ndarray:
        """Nyström residual r(x) = 1 - k_xZ K_ZZ^-1 k_Zx in [0, 1] (0 on the data, -> 1 far),
        over the first ``rank`` pivots (default all)."""
        Xt = self.transform(X)
        p = self.n_inducing_ if rank is None else max(1, min(int(rank), self.n_inducing_))
        out = np.empty(Xt.shape[0])
        for start, K in self._chunks(Xt):
            phi = solve_triangular(self.chol_zz_[:p, :p], K[:, :p].T, lower=True, check_finite=False)
            out[start : start + K.shape[0]] = 1.0 - np.einsum("ij,ij->j", phi, phi)
        return np.clip(out, 0.0, 1.0)

    # --------------------------------------------------------------- serialisation
    def get_params(self) -> dict[str, Any]:
        """Constructor hyper-parameters (JSON-able)."""
        return {
            "n_inducing": self.n_inducing,
            "length_scale": self.length_scale,
            "ridge": self.ridge,
            "tol": self.tol,
            "standardize_features": self.standardize_features,
            "normalize_features": self.normalize_features,
            "standardize_targets": self.standardize_targets,
            "block_size": self.block_size,
            "pool_factor": self.pool_factor,
            "chunk_size": self.chunk_size,
            "kernel": self.kernel,
            "zeta": self.zeta,
        }

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(arrays, params): NumPy arrays and JSON-able hyper-parameters of a fitted model."""
        self._require_fit()
        arrays = {
            "inducing_points": self.inducing_points_,
            "inducing_indices": self.inducing_indices_,
            "weights": self.weights_,
            "chol_zz_packed": self.chol_zz_[np.tril_indices(self.chol_zz_.shape[0])],
            "x_mean": self.x_mean_,
            "x_scale": self.x_scale_,
            "y_mean": self.y_mean_,
            "y_std": self.y_std_,
        }
        params = {
            "class": "NystromKernelRidge",
            **self.get_params(),
            "n_features": int(self.x_mean_.size),
            "n_targets": int(self.y_mean_.size),
            "target_ndim": int(self._y_ndim),
            "n_train": int(self.n_train_),
            "n_inducing_selected": self.n_inducing_,
            "residual_trace_per_sample": float(self.trace_history_[-1]) if self.trace_history_.size else 1.0,
        }
        if self.committee_size:
            arrays["member_weights"] = self.member_weights_
            params.update(calibration_params(self.calibration_, self.calibration_power_, self.calibration_floor_))
        return {k: np.array(v, copy=True) for k, v in arrays.items()}, params

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], params: dict[str, Any]) -> "NystromKernelRidge":
        """Rebuild a fitted model from :meth:`to_arrays` output."""
        if params.get("class", "NystromKernelRidge") != "NystromKernelRidge":
            raise ValueError(f"parameters describe a {params.get('class')!r}, not a NystromKernelRidge")
        ctor = {k: params[k] for k in cls(1, 1.0).get_params() if k in params}
        model = cls(**ctor)
        model.inducing_points_ = np.asarray(arrays["inducing_points"], dtype=float)
        model.inducing_indices_ = np.asarray(arrays["inducing_indices"], dtype=np.int64)
        weights = np.asarray(arrays["weights"], dtype=float)
        model.weights_ = weights.reshape(weights.shape[0], -1)
        m = model.inducing_points_.shape[0]
        if "chol_zz_packed" in arrays:  # lower triangle, row by row
            packed = np.asarray(arrays["chol_zz_packed"], dtype=float)
            if packed.shape != (m * (m + 1) // 2,):
                raise ValueError("inconsistent Nyström arrays (packed chol_zz)")
            model.chol_zz_ = np.zeros((m, m))
            model.chol_zz_[np.tril_indices(m)] = packed
        else:  # files written before the packed layout
            model.chol_zz_ = np.asarray(arrays["chol_zz"], dtype=float)
        model.x_mean_ = np.asarray(arrays["x_mean"], dtype=float)
        model.x_scale_ = np.asarray(arrays["x_scale"], dtype=float)
        model.y_mean_ = np.atleast_1d(np.asarray(arrays["y_mean"], dtype=float))
        model.y_std_ = np.atleast_1d(np.asarray(arrays["y_std"], dtype=float))
        model._y_ndim = int(params.get("target_ndim", 1))
        model.n_train_ = int(params.get("n_train", 0))
        model.trace_history_ = np.array([params.get("residual_trace_per_sample", np.nan)])
        model.train_residual_ = None
        model.n_exact_pivots_ = None
        if model.chol_zz_.shape != (m, m) or model.weights_.shape[0] != m:
            raise ValueError("inconsistent Nyström arrays (inducing points, weights, chol_zz)")
        if model.x_mean_.shape != (model.inducing_points_.shape[1],):
            raise ValueError("inconsistent Nyström arrays (feature dimension)")
        if "member_weights" in arrays:  # files written before committees have none
            members = np.asarray(arrays["member_weights"], dtype=float)
            if members.ndim != 3 or members.shape[1:] != model.weights_.shape:
                raise ValueError("inconsistent Nyström arrays (committee member weights)")
            model.member_weights_ = members
            model.calibration_, model.calibration_power_, model.calibration_floor_ = calibration_from_params(params)
        model._fitted = True
        return model


def held_out_residuals(model: NystromKernelRidge, X: np.ndarray, groups: np.ndarray, rank: int,
                       n_splits: int) -> np.ndarray:
    """Nyström residuals of training rows as if their group had not been seen, shape (N,).

    Rows X (raw features, the ones ``model`` was fitted on) are split into ``n_splits``
    folds of whole groups (structures; group g goes to fold rank(g) mod n_splits). For the
    rows of a fold, the basis is the first ``rank`` pivots minus those that came from the
    fold's own groups (identified by matching the preprocessed rows to the inducing
    points): r(x) = 1 - k_xZ' K_Z'Z'^-1 k_Z'x, K_Z'Z' from the kernel itself (one Cholesky
    per fold, O(p^3)). Reference distribution of the OOD score (NMRModel.fit_ood_reference).
    """
    Xt = model.transform(X)
    groups = np.asarray(groups)
    p = max(1, min(int(rank), model.n_inducing_))
    Z = model.inducing_points_[:p]
    kern = {"length_scale": model.length_scale, "kernel": model.kernel, "zeta": model.zeta}
    x2 = _sq_norms(Xt)
    z2 = _sq_norms(Z)
    if model.kernel == "dot_product":
        x2, z2 = np.where(x2 == 0.0, 0.0, 1.0), np.where(z2 == 0.0, 0.0, 1.0)
    # the group of each pivot: a training row equal to it
    row_of = {row.tobytes(): g for row, g in zip(Xt, groups)}
    pivot_group = np.array([row_of.get(z.tobytes(), None) for z in Z], dtype=object)
    labels = np.unique(groups)
    fold_of_group = {g: k % n_splits for k, g in enumerate(labels)}
    fold = np.array([fold_of_group[g] for g in groups])
    pivot_fold = np.array([fold_of_group.get(g, -1) for g in pivot_group])
    out = np.empty(len(Xt))
    for f in range(min(n_splits, len(labels))):
        rows = np.flatnonzero(fold == f)
        keep = pivot_fold != f
        if not keep.any():
            out[rows] = 1.0
            continue
        Zk = Z[keep]
        kzz = _kernel_block(Zk, Zk, z2[keep], z2[keep], **kern)
        chol = np.linalg.cholesky(kzz + PIVOT_FLOOR * np.eye(len(Zk)))
        K = _kernel_block(Xt[rows], Zk, x2[rows], z2[keep], **kern)
        phi = solve_triangular(chol, K.T, lower=True, check_finite=False)
        out[rows] = np.clip(1.0 - np.einsum("ij,ij->j", phi, phi), 0.0, 1.0)
    return out
