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
deviation (ddof = 1) of the K members.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CommitteeSettings", "committee_design", "calibration_factor", "recentred", "member_spread",
           "MIN_COMMITTEE_SIZE", "MIN_LEFT_OUT"]

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


def member_spread(member_predictions: np.ndarray, calibration: float) -> np.ndarray:
    """Calibrated uncertainty α · std_k (ddof = 1) over the members (axis 0), same units."""
    return calibration * np.std(np.asarray(member_predictions, dtype=float), axis=0, ddof=1)
