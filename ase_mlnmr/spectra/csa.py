"""Spin-½ lineshapes: fast MAS (isotropic lines) and the static chemical-shift-anisotropy
powder pattern.

Static CSA, Haeberlen convention on the SHIFT scale (ζδ = δzz − δiso = −a·ζσ for a
calibrated shielding, ηδ ∈ [0, 1]); for a field at polar angles (β, α) in the CSA
principal frame (``NMR_CONVENTIONS.md``, "Spin-½ static CSA")::

    δ(β, α) = δiso + (ζδ/2)(3cos²β − 1 + ηδ sin²β cos2α)

Powder average: as for the central transition (exact in β — δ is linear in cos²β — and
the midpoint rule in α, ``n_alpha`` nodes, adaptive by default), so the edges of the
pattern sit at the principal values δ11 ≥ δ22 ≥ δ33 and the pattern is exact up to the
α quadrature.
"""
from __future__ import annotations

import numpy as np

from .axis import PPMAxis
from .central_transition import _measure_below, adaptive_n_alpha, alpha_nodes
from .sites import SiteLike, as_sites

__all__ = ["csa_bin_probabilities", "csa_static_spectrum", "isotropic_spectrum", "principal_shifts"]


def principal_shifts(delta_iso_ppm, zeta_ppm, eta) -> np.ndarray:
    """(…, 3) principal shifts δ11 ≥ δ22 ≥ δ33 (ppm) from Haeberlen δiso, ζδ, ηδ:
    δzz = δiso + ζ, δxx = δiso − ζ(1 + η)/2, δyy = δiso − ζ(1 − η)/2."""
    d, z, e = (np.asarray(v, dtype=float) for v in (delta_iso_ppm, zeta_ppm, eta))
    values = np.stack([d + z, d - z * (1 + e) / 2, d - z * (1 - e) / 2], axis=-1)
    return -np.sort(-values, axis=-1)


def csa_bin_probabilities(delta_ppm: float, zeta_ppm: float, eta: float, edges: np.ndarray,
                          n_alpha: int | None = None) -> np.ndarray:
    """Fraction of a static CSA powder pattern in each bin (ppm edges)."""
    edges = np.asarray(edges, dtype=float)
    out = np.zeros(len(edges) - 1)
    low, high = principal_shifts(delta_ppm, zeta_ppm, eta)[[2, 0]]
    if high - low <= 0.0:
        k = int(np.searchsorted(edges, delta_ppm, side="right")) - 1
        if 0 <= k < len(out):
            out[k] = 1.0
        return out
    if n_alpha is None:
        n_alpha = adaptive_n_alpha(high - low, edges[1] - edges[0])
    c = alpha_nodes(n_alpha)[:, None]
    a1 = 0.5 * zeta_ppm * (3.0 - eta * c)          # coefficient of cos²β
    a0 = delta_ppm + 0.5 * zeta_ppm * (eta * c - 1.0)
    j0 = max(int(np.searchsorted(edges, low, side="right")) - 1, 0)
    j1 = min(int(np.searchsorted(edges, high, side="left")), len(edges) - 1)
    if j1 < j0:
        return out
    cdf = _measure_below(np.zeros_like(a1), a1, a0, edges[None, j0:j1 + 1]).mean(axis=0)
    out[j0:j1] = np.diff(cdf)
    return out


def csa_static_spectrum(sites: SiteLike, axis: PPMAxis, n_alpha: int | None = None) -> np.ndarray:
    """Sum of static CSA powder patterns of the sites (intensity per ppm, unnormalised).
    Quadrupolar sites are rejected (their static CT is :func:`ct_spectrum_per_site`)."""
    sites = as_sites(sites)
    if np.any(sites.cq_MHz != 0):
        raise ValueError("sites carry a quadrupolar coupling: use the central-transition simulators "
                         "(mode='static'), not the spin-1/2 CSA pattern")
    edges = axis.edges
    out = np.zeros(axis.count)
    for i in range(len(sites)):
        out += sites.weight[i] * csa_bin_probabilities(sites.delta_iso_ppm[i], sites.csa_zeta_ppm[i],
                                                       sites.csa_eta[i], edges, n_alpha)
    return out / axis.step_ppm


def isotropic_spectrum(positions_ppm, weights, axis: PPMAxis) -> np.ndarray:
    """Delta lines at ``positions_ppm`` (fast MAS of spin-½ sites, or MQMAS isotropic
    positions) deposited by linear interpolation between bin centres (intensity per ppm)."""
    t = axis.index_of(positions_ppm)
    k0 = np.floor(t).astype(np.int64)
    frac = t - k0
    w = np.asarray(weights, dtype=float) * np.ones_like(t)
    out = np.zeros(axis.count + 2)
    for k, v in ((k0, w * (1.0 - frac)), (k0 + 1, w * frac)):
        ok = (k >= 0) & (k < axis.count)
        out[:axis.count] += np.bincount(k[ok], weights=v[ok], minlength=axis.count)[:axis.count]
    return out[:axis.count] / axis.step_ppm
