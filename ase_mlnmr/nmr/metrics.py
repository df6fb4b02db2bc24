"""Error metrics between reference and predicted NMR tensor sets.

Observable metrics of Harper et al. (2025, https://doi.org/10.1039/d5ta05090a), per
species, for EFG tensors (DFT tensors there are sign-fixed so that Vzz > 0, hence |Vzz|):

* ``C~Q = (|Vzz| - mu(|Vzz|)) / s(|Vzz|)`` with mu, s the mean and population standard
  deviation (ddof = 0) of |Vzz| over the species in the *reference* set;
* ``eta~ = (Vxx - Vyy) sign(Vzz) / mu(|Vzz|)`` (= eta |Vzz| / mu(|Vzz|));
* ``q~ = max |q_ref . q_ML|`` over the equivalent unit quaternions of the two principal
  frames; q~ = cos(omega/2) with omega the smallest rotation angle between the two
  frames modulo axis flips, so q~ lies in [1/2, 1] (1 = same orientation; 1/2 = the
  largest possible misorientation, 120 deg, for the four-fold axis-flip symmetry).

All are dimensionless, so they are independent of the EFG unit.
"""
from __future__ import annotations

import warnings
from typing import Dict, Mapping, NamedTuple, Sequence, Tuple, Union

import numpy as np

from ..core.spherical_tensors import as_tensors
from .efg import efg_principal_components
from .orientation import (
    DEFAULT_AXIAL_TOL,
    equivalent_quaternions,
    tensor_orientation,
)
from .shielding import haeberlen, maryland

__all__ = [
    "HarperObservables",
    "OrientationSimilarity",
    "EFGErrors",
    "ShieldingErrors",
    "species_vzz_stats",
    "harper_observables",
    "orientation_similarity",
    "component_mae",
    "efg_errors",
    "shielding_errors",
]

SpeciesArg = Union[None, str, Sequence[str]]
Stats = Mapping[str, Tuple[float, float]]


class HarperObservables(NamedTuple):
    """Per-tensor ``cq_tilde`` and ``eta_tilde`` (N,), and the per-species
    ``stats = {species: (mu(|Vzz|), s(|Vzz|))}`` used."""

    cq_tilde: np.ndarray
    eta_tilde: np.ndarray
    stats: Dict[str, Tuple[float, float]]


class OrientationSimilarity(NamedTuple):
    """``q_tilde`` (N,) in [1/2, 1] and ``axial`` (N,): True where either frame is not
    unique (axial/isotropic tensor), so ``q_tilde`` there is not meaningful."""

    q_tilde: np.ndarray
    axial: np.ndarray


class EFGErrors(NamedTuple):
    """Errors for one species (dimensionless except ``mae_components``, in EFG units)."""

    n: int
    mae_cq_tilde: float
    mae_eta_tilde: float
    mean_q_tilde: float
    n_axial: int
    mae_components: float


class ShieldingErrors(NamedTuple):
    """Mean absolute errors for one species (ppm, except the dimensionless eta and kappa)."""

    n: int
    mae_iso: float
    mae_zeta: float
    mae_eta: float
    mae_span: float
    mae_skew: float
    mae_components: float


def _stack(tensors, name: str) -> np.ndarray:
    t = as_tensors(tensors, name, finite=True)
    if t.ndim == 2:
        t = t[None]
    if t.ndim != 3:
        raise ValueError(f"{name}: expected an (N, 3, 3) array, got shape {t.shape}")
    return t


def _species_array(species: SpeciesArg, n: int) -> np.ndarray:
    if species is None:
        return np.full(n, "all", dtype=object)
    if isinstance(species, str):
        return np.full(n, species, dtype=object)
    arr = np.asarray(list(species), dtype=object)
    if arr.shape != (n,):
        raise ValueError(f"got {arr.size} species labels for {n} tensors")
    return arr


def _pair(ref, pred, species: SpeciesArg, what: str):
    r = _stack(ref, f"{what} reference")
    p = _stack(pred, f"{what} prediction")
    if r.shape != p.shape:
        raise ValueError(f"reference and predicted {what} tensors differ in shape: {r.shape} vs {p.shape}")
    return r, p, _species_array(species, r.shape[0])


def species_vzz_stats(efg, species: SpeciesArg = None) -> Dict[str, Tuple[float, float]]:
    """``{species: (mean |Vzz|, population std |Vzz|)}`` of (N, 3, 3) EFG tensors."""
    t = _stack(efg, "efg")
    labels = _species_array(species, t.shape[0])
    vzz = np.abs(np.asarray(efg_principal_components(t).vzz))
    return {str(s): (float(vzz[labels == s].mean()), float(vzz[labels == s].std())) for s in np.unique(labels)}


def harper_observables(efg, species: SpeciesArg = None, stats: Stats | None = None) -> HarperObservables:
    """``C~Q`` and ``eta~`` of (N, 3, 3) EFG tensors, normalised per species by ``stats``
    (default: the statistics of ``efg`` itself; pass the reference set's statistics when
    transforming predictions). A species with s(|Vzz|) = 0 gives NaN C~Q (with a warning)."""
    t = _stack(efg, "efg")
    labels = _species_array(species, t.shape[0])
    used = dict(stats) if stats is not None else species_vzz_stats(t, labels)
    principal = efg_principal_components(t)
    vxx, vyy, vzz = (np.asarray(x) for x in principal[:3])
    mu = np.empty(len(labels))
    sd = np.empty(len(labels))
    for s in np.unique(labels):
        if str(s) not in used:
            raise KeyError(f"no |Vzz| statistics for species {s!r}")
        m, d = used[str(s)]
        if d == 0:
            warnings.warn(f"species {s!r}: std(|Vzz|) = 0, C~Q is undefined (NaN)", RuntimeWarning)
        if m == 0:
            raise ValueError(f"species {s!r}: mean |Vzz| = 0, cannot normalise")
        mu[labels == s], sd[labels == s] = m, d
    with np.errstate(divide="ignore", invalid="ignore"):
        cq_tilde = np.where(sd > 0, (np.abs(vzz) - mu) / np.where(sd > 0, sd, 1.0), np.nan)
    eta_tilde = (vxx - vyy) * np.where(vzz < 0, -1.0, 1.0) / mu
    return HarperObservables(cq_tilde, eta_tilde, {str(k): tuple(v) for k, v in used.items()})


def orientation_similarity(
    tensors_ref, tensors_pred, convention: str = "efg", axial_tol: float = DEFAULT_AXIAL_TOL
) -> OrientationSimilarity:
    """``q~ = max |q_ref,i . q_pred,j|`` over the 8 equivalent quaternions of each
    principal frame (``convention`` 'efg' or 'haeberlen'); 1 for the same orientation."""
    r = _stack(tensors_ref, "reference")
    p = _stack(tensors_pred, "prediction")
    if r.shape != p.shape:
        raise ValueError(f"reference and predicted tensors differ in shape: {r.shape} vs {p.shape}")
    o_ref = tensor_orientation(r, convention, axial_tol)
    o_pred = tensor_orientation(p, convention, axial_tol)
    q_ref = equivalent_quaternions(o_ref.quaternion)
    q_pred = equivalent_quaternions(o_pred.quaternion)
    dots = np.abs(np.einsum("nia,nja->nij", q_ref, q_pred))
    q_tilde = np.clip(dots.max(axis=(-2, -1)), 0.0, 1.0)
    return OrientationSimilarity(q_tilde, np.asarray(o_ref.axial) | np.asarray(o_pred.axial))


def component_mae(ref, pred) -> float:
    """Mean absolute error over all 9 Cartesian components of (N, 3, 3) tensors."""
    r = _stack(ref, "reference")
    p = _stack(pred, "prediction")
    if r.shape != p.shape:
        raise ValueError(f"reference and predicted tensors differ in shape: {r.shape} vs {p.shape}")
    return float(np.abs(r - p).mean())


def efg_errors(efg_ref, efg_pred, species: SpeciesArg = None) -> Dict[str, EFGErrors]:
    """Per-species errors between reference and predicted EFG sets: MAE of C~Q and eta~
    (both normalised with the reference statistics), mean q~, the number of axial
    frames, and the component MAE (EFG units)."""
    r, p, labels = _pair(efg_ref, efg_pred, species, "EFG")
    stats = species_vzz_stats(r, labels)
    obs_r = harper_observables(r, labels, stats)
    obs_p = harper_observables(p, labels, stats)
    sim = orientation_similarity(r, p, "efg")
    out: Dict[str, EFGErrors] = {}
    for s in np.unique(labels):
        m = labels == s
        out[str(s)] = EFGErrors(
            n=int(m.sum()),
            mae_cq_tilde=float(np.abs(obs_r.cq_tilde[m] - obs_p.cq_tilde[m]).mean()),
            mae_eta_tilde=float(np.abs(obs_r.eta_tilde[m] - obs_p.eta_tilde[m]).mean()),
            mean_q_tilde=float(sim.q_tilde[m].mean()),
            n_axial=int(sim.axial[m].sum()),
            mae_components=float(np.abs(r[m] - p[m]).mean()),
        )
    return out


def shielding_errors(ms_ref, ms_pred, species: SpeciesArg = None) -> Dict[str, ShieldingErrors]:
    """Per-species MAE of siso, zeta, eta (Haeberlen), span, skew (Maryland) and of the 9
    Cartesian components, for (N, 3, 3) shielding tensors (ppm)."""
    r, p, labels = _pair(ms_ref, ms_pred, species, "shielding")
    h_r, h_p = haeberlen(r), haeberlen(p)
    m_r, m_p = maryland(r), maryland(p)
    out: Dict[str, ShieldingErrors] = {}
    for s in np.unique(labels):
        m = labels == s

        def mae(a, b):
            return float(np.abs(np.asarray(a)[m] - np.asarray(b)[m]).mean())

        out[str(s)] = ShieldingErrors(
            n=int(m.sum()),
            mae_iso=mae(h_r.iso, h_p.iso),
            mae_zeta=mae(h_r.zeta, h_p.zeta),
            mae_eta=mae(h_r.eta, h_p.eta),
            mae_span=mae(m_r.span, m_p.span),
            mae_skew=mae(m_r.skew, m_p.skew),
            mae_components=float(np.abs(r[m] - p[m]).mean()),
        )
    return out
