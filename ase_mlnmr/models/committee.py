"""Sub-sampled committees: members that differ only in their weights, and their calibration.

Method of Musil et al., J. Chem. Theory Comput. 15, 906 (2019), doi:10.1021/acs.jctc.8b00959:
K members are fitted on subsamples of the training *groups* (structures, or a dataset's
near-duplicate groups; never single atoms: symmetry-equivalent sites carry identical
tensors and would leak), drawn without replacement, a fraction f of the groups each. The
regressors share everything else (inducing points, kernel block, feature and target
scales), so a member is one more weight column.

Centring. The members are re-centred on the model fitted on all groups,
w_k ← w_full + (w_k − w̄): the committee mean *is* the full model (which saw every group
and is more accurate than the mean of members that saw a fraction f), and the member
spread is the sub-sampled one. Predictions are linear in the weights, so the spread of
the predictions is unchanged by the re-centring, and each member rotates like the model.

Calibration. For a training atom i, the n_i members that never saw its group give an
out-of-sample mean ȳ_i and sample variance s_i² = Σ_k |y_ik − ȳ_i|² / (d (n_i − 1)) (d = 1
for scalars, 2λ + 1 for spherical tensors: one isotropic variance per atom, so the factor
is rotation invariant). Assuming y_i − ȳ_i ~ N(0, (α² + 1/n_i) s²) with s² estimated on
ν_i = d (n_i − 1) degrees of freedom, the maximum-likelihood factor is

    α² = mean_i [ (ν_i − 2)/ν_i · |y_i − ȳ_i|² / (d s_i²) − 1/n_i ]

(Musil et al. for d = 1: −1/n + (n − 3)/(n − 1) · mean (y − ȳ)²/s²). Atoms with ν_i ≤ 2 do
not enter. The calibrated per-atom uncertainty of a prediction is α times the standard
deviation (ddof = 1) of the K members (calibration ``"scale"``).

Power-law calibration (``"power"``; docs/protocols/committee_calibration.md). α above
calibrates the half-data members' errors, which are larger than those of the full model
that is used. Instead, pair for every training atom the out-of-sample member spread s_i
(above) with the residual r_i of the *full* model refitted, same hyper-parameters, without
the atom's calibration fold (:func:`calibration_folds`), and fit

    u(s) = sqrt(a² s^(2b) + c²),   a > 0, 0 ≤ b ≤ 2, c ≥ 1e-6 RMS(r)

by maximum likelihood, minimising Σ_i [d log u(s_i) + |r_i|² / (2 u(s_i)²)] (the
non-linear scaling of Musil et al. with a floor c for atoms whose members all agree; b = 0
is a constant σ). At prediction, with s the isotropic spread of all K members, each
scalar or spherical component μ gets u_μ = sqrt((a s^(b−1) std_μ)² + c²), whose mean
square over μ is u(s)²; ``"scale"`` is the case a = α, b = 1, c = 0.

``"power_eiv"`` (docs/protocols/committee_calibration_v2.md): the same law and pairs, two
changes to the fit. (i) s_i is a sample spread on ν_i = d (n_i − 1) degrees of freedom
(n_i ≈ K/2 members), noisier than the K-member spread of a prediction: the law is taken
as one of the true spread σ_i and each pair's likelihood is integrated over σ_i given s_i
(scale-invariant prior, :func:`spread_noise_nodes`; the Student-t of Musil et al. when
b = 1, c = 0). (ii) The law is shrunk towards the constant σ₀ = RMS(r),
u² = w (a² s^(2b) + c²) + (1 − w) σ₀², with w ∈ [0, 1] chosen by the Gaussian likelihood
of the held-out calibration folds (:func:`shrinkage_weight`): a spread that does not
predict the errors of held-out groups is not trusted. The result is again (a, b, c).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp

__all__ = ["CommitteeSettings", "committee_design", "calibration_factor", "recentred", "member_spread",
           "calibration_folds", "calibration_fit_rows", "out_of_sample_spread", "spread_noise_nodes",
           "power_likelihood", "power_calibration", "shrinkage_weight", "CalibrationFit", "fit_calibration",
           "calibration_params", "calibration_from_params",
           "CALIBRATIONS", "MIN_COMMITTEE_SIZE", "MIN_LEFT_OUT"]

#: Calibration methods: one scale factor α; the power law with a floor fitted by Gaussian maximum
#: likelihood ("power", protocol v1); the same law fitted with the noise of the calibration spreads
#: integrated out and shrunk towards a constant σ by cross-validation ("power_eiv", protocol v2).
CALIBRATIONS = ("scale", "power", "power_eiv")

#: Nodes of the integral over a calibration spread's sampling noise ("power_eiv").
NOISE_NODES = 64

#: Shrinkage weights w tried by the calibration-fold cross-validation ("power_eiv").
SHRINKAGE_WEIGHTS = np.linspace(0.0, 1.0, 21)

#: Smallest factor √w kept on a (a > 0 in the model file; u is then the constant σ to ~1e-12).
SHRINKAGE_MIN_SCALE = 1e-6

#: Folds of the training groups for the full model's out-of-sample residuals ("power").
N_CALIBRATION_FOLDS = 5

#: Bounds of the power b of u = a s^b.
POWER_BOUNDS = (0.0, 2.0)

#: Smallest floor c, relative to the RMS residual (keeps the likelihood finite).
FLOOR_MIN = 1e-6

#: Largest floor c, relative to the RMS residual: far above any maximum-likelihood floor
#: (u ≫ every residual only lowers the likelihood), it keeps exp(2 log c) finite while
#: L-BFGS-B probes large steps.
FLOOR_MAX = 1e3

#: Smallest committee (each group must still be left out by MIN_LEFT_OUT members).
MIN_COMMITTEE_SIZE = 4

#: Members that must never have seen a group: the calibration of a scalar needs ν = n − 1 > 2.
MIN_LEFT_OUT = 4

#: α² below this (a committee whose spread already exceeds every error) is clipped to it.
ALPHA2_FLOOR = 1e-6


@dataclass(frozen=True)
class CommitteeSettings:
    """``size`` K members (0: no committee), each fitted on a fraction ``fraction`` of the
    groups drawn without replacement (``seed`` of the draw)."""

    size: int = 0
    fraction: float = 0.5
    seed: int = 0
    calibration: str = "scale"


def committee_design(groups: np.ndarray, settings: CommitteeSettings) -> np.ndarray:
    """Training rows of every member, (K, n_rows) bool, from one group label per row.

    Each member takes round(f G) of the G groups (at least 1, at most G − 1, and at most
    ⌊(K − 4) G / K⌋: one group fewer when f G is just above it) without replacement; groups are dealt so that each is used by as equal a number of members as
    possible (a member takes the groups used least so far, ties broken at random), which
    keeps the number of members that never saw a group close to K (1 − f) for every group.
    Raises ``ValueError`` when that cannot leave every group out of :data:`MIN_LEFT_OUT`
    members (too few members or too large a fraction).
    """
    groups = np.asarray(groups)
    labels, row_group = np.unique(groups, return_inverse=True)
    n_groups = len(labels)
    if settings.size < MIN_COMMITTEE_SIZE:
        raise ValueError(f"a committee needs at least {MIN_COMMITTEE_SIZE} members, got {settings.size}")
    if not 0.0 < settings.fraction < 1.0:
        raise ValueError(f"committee fraction must be in (0, 1), got {settings.fraction!r}")
    if n_groups < 2:
        raise ValueError(f"a committee needs at least 2 groups (structures) to subsample, got {n_groups}")
    # at most (K − MIN_LEFT_OUT) G / K groups each, so that every group stays out of MIN_LEFT_OUT members
    cap = (settings.size - MIN_LEFT_OUT) * n_groups // settings.size
    wanted = min(n_groups - 1, max(1, int(round(settings.fraction * n_groups))))
    if cap < 1 or wanted > cap + 1:
        raise ValueError(f"committee of {settings.size} members on {settings.fraction:g} of {n_groups} groups would "
                         f"leave groups out of fewer than {MIN_LEFT_OUT} members, which the calibration needs: use "
                         f"more members or a smaller fraction (size × (1 − fraction) ≥ {MIN_LEFT_OUT})")
    per_member = min(wanted, cap)
    rng = np.random.default_rng(settings.seed)
    uses = np.zeros(n_groups, dtype=int)
    takes = np.zeros((settings.size, n_groups), dtype=bool)
    for k in range(settings.size):
        order = np.lexsort((rng.random(n_groups), uses))  # least used first, random ties
        takes[k, order[:per_member]] = True
        uses[order[:per_member]] += 1
    return takes[:, row_group]


def recentred(member_weights: np.ndarray, full_weights: np.ndarray) -> np.ndarray:
    """w_full + (w_k − w̄) for every member k (axis 0): the committee mean becomes w_full."""
    member_weights = np.asarray(member_weights, dtype=float)
    return member_weights - member_weights.mean(axis=0) + np.asarray(full_weights, dtype=float)


def calibration_factor(member_predictions: np.ndarray, targets: np.ndarray, seen: np.ndarray) -> float:
    """Calibration factor α (see the module docstring) from training-row predictions.

    ``member_predictions`` (K, n) or (K, n, d); ``targets`` (n,) or (n, d) in the same
    units; ``seen`` (K, n) bool, True where the member was trained on the row's group.
    Raises ``ValueError`` when no row has enough out-of-sample members (ν_i > 2).
    """
    predictions = np.asarray(member_predictions, dtype=float)
    K, n = predictions.shape[:2]
    predictions = predictions.reshape(K, n, -1)
    targets = np.asarray(targets, dtype=float).reshape(n, -1)
    d = targets.shape[1]
    unseen = ~np.asarray(seen, dtype=bool)
    n_out = unseen.sum(axis=0)
    dof = d * (n_out - 1)
    usable = dof > 2
    if not usable.any():
        raise ValueError("committee calibration: no training row is left out by enough members "
                         f"(need {2 // d + 2} out of {K}); use more members or a smaller fraction")
    weights = unseen[:, usable, None].astype(float)
    count = n_out[usable].astype(float)
    mean = (weights * predictions[:, usable]).sum(axis=0) / count[:, None]
    spread2 = (weights * (predictions[:, usable] - mean) ** 2).sum(axis=(0, 2)) / dof[usable]
    spread2 = np.maximum(spread2, np.finfo(float).tiny)
    error2 = ((targets[usable] - mean) ** 2).sum(axis=1) / d
    nu = dof[usable].astype(float)
    alpha2 = float(np.mean((nu - 2.0) / nu * error2 / spread2 - 1.0 / count))
    return float(np.sqrt(max(alpha2, ALPHA2_FLOOR)))


def member_spread(member_predictions: np.ndarray, calibration: float, power: float = 1.0,
                  floor: float = 0.0) -> np.ndarray:
    """Calibrated uncertainty over the members (axis 0), same units and shape as one member.

    u_μ = sqrt((a s^(b−1) std_μ)² + c²) with a = ``calibration``, b = ``power``, c =
    ``floor``, std_μ the ddof-1 standard deviation of each value and s² the mean of std_μ²
    over the last axis of (K, n, d) predictions (s = std for (K, n)); a · std_μ when b = 1
    and c = 0.
    """
    predictions = np.asarray(member_predictions, dtype=float)
    std = np.std(predictions, axis=0, ddof=1)
    if power == 1.0 and floor == 0.0:
        return calibration * std
    spread = np.sqrt(np.mean(std**2, axis=-1, keepdims=True)) if predictions.ndim == 3 else std
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(spread > 0.0, calibration * spread ** (power - 1.0), 0.0)
    return np.sqrt((factor * std) ** 2 + floor**2)


def calibration_folds(member_rows: np.ndarray, n_folds: int = N_CALIBRATION_FOLDS, seed: int = 0) -> np.ndarray:
    """Calibration fold of every row, (n,) int, from the committee design (K, n) bool.

    Rows with the same member pattern (the same members saw them) form one unit: every
    group has one pattern, so a group is never split. Units are dealt to ``n_folds`` folds
    in random order (``seed``), round robin; fewer folds when there are fewer units.
    """
    _, unit = np.unique(np.asarray(member_rows, dtype=bool).T, axis=0, return_inverse=True)
    unit = unit.ravel()
    n_units = int(unit.max()) + 1
    if n_units < 2:
        raise ValueError("committee calibration needs at least 2 groups with different member patterns")
    order = np.random.default_rng(seed).permutation(n_units)
    fold_of_unit = np.empty(n_units, dtype=int)
    fold_of_unit[order] = np.arange(n_units) % min(n_folds, n_units)
    return fold_of_unit[unit]


def calibration_fit_rows(method: str, seen: np.ndarray) -> np.ndarray:
    """Training rows of the full-model refits that calibration ``method`` needs, (F, n) bool.

    One row per calibration fold of :func:`calibration_folds` (in fold order): True outside
    the fold. (0, n) for ``"scale"``, which needs no refit. Models that can share work
    between fits (Gram blocks, a shared kernel matrix) fit these together with the members
    and hand :func:`fit_calibration` a ``refit_predict`` that looks them up.
    """
    seen = np.asarray(seen, dtype=bool)
    if method == "scale":
        return np.zeros((0, seen.shape[1]), dtype=bool)
    if method not in CALIBRATIONS:
        raise ValueError(f"committee calibration must be one of {list(CALIBRATIONS)}, got {method!r}")
    folds = calibration_folds(seen)
    return np.array([folds != fold for fold in np.unique(folds)])


def out_of_sample_spread(member_predictions: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Isotropic spread s_i (ddof 1) of the members that did not see row i, (n,).

    s_i² = Σ_k∉seen |y_ik − ȳ_i|² / (d (n_i − 1)); NaN where fewer than 2 members left i out.
    """
    predictions = np.asarray(member_predictions, dtype=float)
    K, n = predictions.shape[:2]
    predictions = predictions.reshape(K, n, -1)
    unseen = ~np.asarray(seen, dtype=bool)
    count = unseen.sum(axis=0)
    weights = unseen[..., None].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = (weights * predictions).sum(axis=0) / count[:, None]
        spread2 = (weights * (predictions - mean) ** 2).sum(axis=(0, 2)) / (predictions.shape[2] * (count - 1))
    return np.where(count >= 2, np.sqrt(spread2), np.nan)


def spread_noise_nodes(dof: float, n_nodes: int = NOISE_NODES) -> tuple[np.ndarray, np.ndarray]:
    """(log(σ²/s²), log weight) per node of the integral over a spread's sampling noise, ν = ``dof``.

    A sample variance on ν degrees of freedom is s² = σ² χ²_ν/ν; with the scale-invariant
    prior p(σ²) ∝ 1/σ² the true variance given s² is σ² = ν s²/(2t), t ~ Gamma(k = ν/2, 1).
    E[f(σ²) | s²] = ∫ f(ν s² e^(−y)/2) e^(k y − e^y)/Γ(k) dy (y = log t) by the trapezoidal rule
    on y ∈ [−40/k, log(k + 12√k + 40)] (the density below e^(−40) outside), weights
    normalised to sum 1. In log t the heavy σ² tail (k = 3/2 for a scalar spread of 4 members)
    is resolved: large residuals get accurate likelihoods.
    """
    if not dof > 0:
        raise ValueError(f"a spread needs degrees of freedom > 0, got {dof!r}")
    k = dof / 2.0
    y = np.linspace(-40.0 / k, np.log(k + 12.0 * np.sqrt(k) + 40.0), n_nodes)
    log_weight = k * y - np.exp(y)
    return np.log(k) - y, log_weight - logsumexp(log_weight)


def power_likelihood(residuals: np.ndarray, spreads: np.ndarray, dof: np.ndarray | None = None
                     ) -> tuple[Callable[[np.ndarray], tuple[float, np.ndarray]], float, float | None]:
    """The negative log likelihood that :func:`power_calibration` minimises, in units of the RMS residual.

    Returns (nll, RMS(r) per scalar, mean log(s_i/RMS(r)) over s_i > 0, None without any).
    ``nll(θ)``, θ = (log a, b, log c), s and c in units of RMS(r), gives
    −Σ_i log Σ_n π_in N_d(r_i; 0, u_in²), u_in² = a² σ_in^(2b) + c², σ_in² = s_i² q_n over the
    noise nodes (log q_n, log π_n) of ν_i (:func:`spread_noise_nodes`; without ``dof`` one
    node, q = π = 1), and its gradient ∂/∂θ = −Σ_in p_in ½ (|r_i|²/u_in² − d)/u_in² ∂u_in²/∂θ,
    p_in the posterior weight of node n. Rows with a non-finite spread or residual are left
    out; s_i = 0 gives u² = c². The powers are an outer product per ν (rows of equal ν share
    their nodes): a² σ_in^(2b) = exp(2 log a + 2b log s_i) · exp(b log q_n), n + 64 exponentials
    instead of 64 n; at θ where an exponent 2 log a + b log σ_in² reaches 700 they are taken node
    by node, clipped at e^700 with zero gradient (finite while L-BFGS-B probes large steps).
    """
    spreads = np.asarray(spreads, dtype=float)
    residuals = np.asarray(residuals, dtype=float).reshape(spreads.size, -1)
    usable = np.isfinite(spreads) & np.all(np.isfinite(residuals), axis=1)
    if usable.sum() < 3:
        raise ValueError("committee calibration: fewer than 3 training rows with an out-of-sample spread")
    s, r2 = spreads[usable], np.sum(residuals[usable] ** 2, axis=1)
    d = residuals.shape[1]
    rms = float(np.sqrt(np.mean(r2) / d))
    if rms == 0.0:
        raise ValueError("committee calibration: the out-of-sample residuals are all zero")
    if dof is None:
        group, log_ratio, log_weight = np.zeros(s.size, dtype=int), np.zeros((1, 1)), np.zeros((1, 1))
    else:
        values, group = np.unique(np.asarray(dof, dtype=float)[usable], return_inverse=True)
        log_ratio, log_weight = (np.array(nodes) for nodes in zip(*(spread_noise_nodes(v) for v in values)))
    positive = s > 0.0
    log_s = np.log(np.where(positive, s, np.finfo(float).tiny)) - np.log(rms)  # s in units of the RMS residual
    mean_log_s = float(np.mean(log_s[positive])) if np.any(positive) else None
    order = np.argsort(group, kind="stable")  # one slice of rows per ν
    log_s, positive, r2, group = log_s[order], positive[order], r2[order] / rms**2, group[order]
    bounds = np.searchsorted(group, np.arange(len(log_ratio) + 1))
    slices = [slice(start, stop) for start, stop in zip(bounds[:-1], bounds[1:])]
    node_log_weight = np.ascontiguousarray(log_weight[group].T)  # (nodes, rows): sums over nodes run along rows
    log_s2 = 2.0 * log_s[positive, None] + log_ratio[group[positive]]  # log σ² per node, s > 0
    log_s2_range = (float(log_s2.min()), float(log_s2.max())) if log_s2.size else (0.0, 0.0)
    buffers = tuple(np.empty(node_log_weight.shape) for _ in range(4))  # reused by every call

    def nll(theta: np.ndarray) -> tuple[float, np.ndarray]:
        log_a, b, log_c = theta
        power, inverse, scaled, terms = buffers
        floor2 = np.exp(2.0 * log_c)
        moving = power  # a² σ^(2b) where it moves with θ: ∂u²/∂ log a = 2 · this
        if 2.0 * log_a + max(b * log_s2_range[0], b * log_s2_range[1]) < 700.0:
            row_factor = np.exp(2.0 * log_a + 2.0 * b * log_s, where=positive, out=np.zeros(log_s.size))
            node_factor = np.exp(b * log_ratio)
            for g, rows in enumerate(slices):
                np.multiply(node_factor[g][:, None], row_factor[rows], out=power[:, rows])
        else:
            exponent = 2.0 * log_a + b * (2.0 * log_s + log_ratio[group].T)
            power[...] = np.where(positive, np.exp(np.minimum(exponent, 700.0)), 0.0)
            moving = np.where(exponent < 700.0, power, 0.0)
        np.add(power, floor2, out=inverse)
        np.log(inverse, out=terms)
        np.reciprocal(inverse, out=inverse)                             # 1/u²
        np.multiply(r2, inverse, out=scaled)                            # |r|²/u²
        terms *= -0.5 * d
        terms -= 0.5 * scaled
        terms += node_log_weight                                        # log π + log N_d + const
        top = terms.max(axis=0)
        terms -= top
        np.exp(terms, out=terms)
        total = terms.sum(axis=0)
        log_rows = top + np.log(total)
        scaled -= d
        scaled *= inverse                                               # (|r|²/u² − d)/u² = 2 ∂ log N/∂u²
        terms *= scaled
        weight = 0.5 / total                                            # p_in = terms_in / total_i; the ½
        floor_gradient = 2.0 * floor2 * float(terms.sum(axis=0) @ weight)
        terms *= moving
        rows_gradient = terms.sum(axis=0) * weight                      # Σ_n p_in ∂ log N/∂u² a² σ_in^(2b)
        b_gradient = 2.0 * float(rows_gradient @ log_s) + sum(float((log_ratio[g] @ terms[:, rows]) @ weight[rows])
                                                              for g, rows in enumerate(slices))
        return -float(np.sum(log_rows)), -np.array([2.0 * np.sum(rows_gradient), b_gradient, floor_gradient])

    return nll, rms, mean_log_s


def power_calibration(residuals: np.ndarray, spreads: np.ndarray,
                      dof: np.ndarray | None = None) -> tuple[float, float, float]:
    """Maximum-likelihood (a, b, c) of u(s) = sqrt(a² s^(2b) + c²) (module docstring).

    ``residuals`` (n,) or (n, d): out-of-sample errors of the full model; ``spreads`` (n,)
    the isotropic member spreads s_i ≥ 0 (same units); rows with a non-finite spread are
    left out. Without ``dof`` ("power") s_i is taken as exact and Σ_i [d log u(s_i) +
    |r_i|²/(2 u(s_i)²)] is minimised. With ``dof`` (n,), the degrees of freedom ν_i of each
    s_i ("power_eiv"), the law is one of the true spread σ_i, and the likelihood of r_i is
    integrated over σ_i given s_i (:func:`spread_noise_nodes`): minimise
    −Σ_i log E[N_d(r_i; 0, u(σ_i)²) | s_i]. For b = 1, c = 0 this is the Student-t of
    Musil et al. (doi:10.1021/acs.jctc.8b00959), r_i/(a s_i) ~ t_ν (d = 1). Both use L-BFGS-B
    over log a, b ∈ [0, 2], log(1e-6 RMS(r)) ≤ log c ≤ log(1e3 RMS(r)) from a few starting points,
    with the analytic gradient.
    """
    nll, rms, mean_log_s = power_likelihood(residuals, spreads, dof)
    bounds = [(None, None), POWER_BOUNDS, (np.log(FLOOR_MIN), np.log(FLOOR_MAX))]
    starts = [(-mean_log_s if mean_log_s is not None else 0.0, 1.0, np.log(0.1)),
              (0.0, 0.5, np.log(0.3)), (-5.0, 0.0, 0.0)]
    best = min((minimize(nll, np.array(x0, dtype=float), jac=True, method="L-BFGS-B", bounds=bounds)
                 for x0 in starts),
               key=lambda result: result.fun)
    log_a, b, log_c = best.x
    return float(np.exp(log_a) * rms ** (1.0 - b)), float(b), float(np.exp(log_c) * rms)


def shrinkage_weight(residuals: np.ndarray, spreads: np.ndarray, dof: np.ndarray, folds: np.ndarray) -> float:
    """Weight w of the power law against a constant σ, chosen by cross-validation ("power_eiv").

    u_w(s)² = w u(s)² + (1 − w) σ₀²: for every calibration fold, u(s) (:func:`power_calibration`
    with ``dof``) and σ₀ (RMS residual per scalar) are fitted on the other folds' rows and the
    fold's rows scored by their Gaussian log likelihood Σ_i [−(d/2) log u_w(s_i)² −
    |r_i|²/(2 u_w(s_i)²)]; w ∈ :data:`SHRINKAGE_WEIGHTS` maximises the sum over the folds.
    w = 0: the spread does not help on held-out groups (a constant σ); w = 1: the law as fitted.
    """
    spreads = np.asarray(spreads, dtype=float)
    residuals = np.asarray(residuals, dtype=float).reshape(spreads.size, -1)
    dof, folds = np.asarray(dof, dtype=float), np.asarray(folds)
    d = residuals.shape[1]
    log_likelihood = np.zeros(SHRINKAGE_WEIGHTS.size)
    for fold in np.unique(folds):
        fit_rows = (folds != fold) & np.isfinite(spreads)
        held_out = (folds == fold) & np.isfinite(spreads)
        a, b, c = power_calibration(residuals[fit_rows], spreads[fit_rows], dof[fit_rows])
        sigma0_2 = float(np.mean(residuals[fit_rows] ** 2))
        s = spreads[held_out]
        law_2 = np.where(s > 0.0, a**2 * np.where(s > 0.0, s, 1.0) ** (2.0 * b), 0.0) + c**2
        u2 = SHRINKAGE_WEIGHTS[:, None] * law_2 + (1.0 - SHRINKAGE_WEIGHTS[:, None]) * sigma0_2
        r2 = np.sum(residuals[held_out] ** 2, axis=1)
        log_likelihood += np.sum(-0.5 * d * np.log(u2) - 0.5 * r2 / u2, axis=1)
    return float(SHRINKAGE_WEIGHTS[np.argmax(log_likelihood)])


@dataclass(frozen=True)
class CalibrationFit:
    """A fitted calibration (:func:`fit_calibration`): the law u(s) = sqrt(a² s^(2b) + c²)
    (``scale`` a, ``power`` b, ``floor`` c), the RMS out-of-sample residual ``constant_sigma``
    σ₀ ("power", "power_eiv"; else None) and the shrinkage weight w of "power_eiv" folded into
    (a, c) (:func:`shrinkage_weight`; else None). Unpacks as (a, b, c, σ₀)."""

    scale: float
    power: float
    floor: float
    constant_sigma: float | None = None
    shrinkage_weight: float | None = None

    def __iter__(self) -> Iterator[float | None]:
        return iter((self.scale, self.power, self.floor, self.constant_sigma))


def fit_calibration(method: str, member_predictions: np.ndarray, targets: np.ndarray, seen: np.ndarray,
                    refit_predict: Callable[[np.ndarray], np.ndarray]) -> CalibrationFit:
    """The calibration ``method`` (:data:`CALIBRATIONS`) fitted on training rows.

    ``member_predictions`` (K, n[, d]), ``targets`` (n[, d]), ``seen`` (K, n) bool as for
    :func:`calibration_factor`; ``refit_predict(rows)`` fits the full model, same
    hyper-parameters, on the rows where ``rows`` ((n,) bool) and returns its predictions
    on all n rows (``"power"`` and ``"power_eiv"`` call it once per calibration fold).
    ``"scale"``: (a, b, c) = (α, 1, 0); ``"power"``: :func:`power_calibration`; ``"power_eiv"``:
    (√w a, b, sqrt(w c² + (1 − w) σ₀²)) from the noise-aware fit (a, b, c) and the weight w of
    :func:`shrinkage_weight`, √w floored at 1e-6 (a > 0). σ₀ ("power", "power_eiv") is the RMS
    per scalar of the full model's out-of-sample residuals: the best constant σ on the
    training side, the reference a calibration must beat.
    """
    if method == "scale":
        return CalibrationFit(calibration_factor(member_predictions, targets, seen), 1.0, 0.0)
    if method not in CALIBRATIONS:
        raise ValueError(f"committee calibration must be one of {list(CALIBRATIONS)}, got {method!r}")
    targets = np.asarray(targets, dtype=float)
    residuals = np.empty_like(targets)
    folds = calibration_folds(seen)
    for fit_rows in calibration_fit_rows(method, seen):
        held_out = ~fit_rows
        residuals[held_out] = targets[held_out] - np.asarray(refit_predict(fit_rows))[held_out]
    spreads = out_of_sample_spread(member_predictions, seen)
    sigma0 = float(np.sqrt(np.mean(residuals**2)))
    if method == "power":
        return CalibrationFit(*power_calibration(residuals, spreads), sigma0)
    dof = residuals[0].size * ((~np.asarray(seen, dtype=bool)).sum(axis=0) - 1)
    a, b, c = power_calibration(residuals, spreads, dof)
    w = shrinkage_weight(residuals, spreads, dof, folds)
    return CalibrationFit(max(np.sqrt(w), SHRINKAGE_MIN_SCALE) * a, b, float(np.sqrt(w * c**2 + (1.0 - w) * sigma0**2)),
                          sigma0, w)


def calibration_params(scale: float, power: float, floor: float) -> dict:
    """Model-file parameters of a calibration: ``committee_calibration`` = α for the scale
    method; ``committee_calibration_power_law`` = {scale a, power b, floor c} otherwise (a
    key older readers do not know, so they refuse the file instead of misapplying it)."""
    if power == 1.0 and floor == 0.0:
        return {"committee_calibration": float(scale)}
    return {"committee_calibration_power_law": {"scale": float(scale), "power": float(power), "floor": float(floor)}}


def calibration_from_params(params: dict) -> tuple[float, float, float]:
    """(a, b, c) from the parameters :func:`calibration_params` wrote (either form)."""
    if "committee_calibration_power_law" in params:
        law = params["committee_calibration_power_law"]
        values = tuple(float(law[k]) for k in ("scale", "power", "floor"))
        if not (np.all(np.isfinite(values)) and values[0] > 0 and POWER_BOUNDS[0] <= values[1] <= POWER_BOUNDS[1]
                and values[2] >= 0):
            raise ValueError(f"invalid committee calibration {law!r}")
        return values
    return float(params["committee_calibration"]), 1.0, 0.0
