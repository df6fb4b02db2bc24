"""Static central-transition lineshape with both the second-order quadrupolar interaction
and a chemical-shift anisotropy of arbitrary relative orientation.

For a field direction b = (sinθ cosφ, sinθ sinφ, cosθ) in the EFG principal frame
(φ from x, η = (Vxx − Vyy)/Vzz — the convention of the static (A, B, C) coefficients,
checked against exact diagonalisation of the Zeeman + quadrupolar Hamiltonian in the
tests)::

    ν(b) = δiso + P·(A cos⁴θ + B cos²θ + C) + Σ_i (δ_ii − δiso)(b·e_i)²     (ppm)

with e_x, e_y, e_z the CSA principal axes in the EFG frame: the columns of
R = Rz(α)Ry(β)Rz(γ) of the site's Euler angles (:func:`ase_mlnmr.nmr.rotation_from_euler`),
δzz − δiso = ζδ, δxx − δiso = −ζδ(1 + ηδ)/2, δyy − δiso = −ζδ(1 − ηδ)/2.

Powder average: ν is even in b, so the hemisphere cosθ ∈ [0, 1] suffices, with φ over
[0, 2π) (midpoint rule, ``n_phi`` slices). Along each slice ν is sampled at ``n_u + 1``
values of cosθ and taken as linear between them: each segment's weight is spread uniformly
over its frequency interval, and the bin integrals of these uniform pieces are summed
exactly (cumulative sums of ramp functions).
"""
from __future__ import annotations

import numpy as np

from ..nmr.orientation import rotation_from_euler
from .central_transition import adaptive_n_alpha, ct_coefficients

__all__ = ["ct_csa_static_bin_probabilities"]


def _segments_cdf(lo: np.ndarray, hi: np.ndarray, mass: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Σ over segments of mass·clip((x − lo)/(hi − lo), 0, 1) at uniform ``edges``."""
    step = edges[1] - edges[0]
    t_lo = (lo - edges[0]) / step
    t_hi = np.maximum((hi - edges[0]) / step, t_lo + 1e-3)  # narrow pieces: 1e-3 bin wide
    c = mass / (t_hi - t_lo)
    n = len(edges)
    points = np.concatenate([t_lo, t_hi])
    slopes = np.concatenate([c, -c])
    inside = points < n - 1
    points, slopes = points[inside], slopes[inside]
    below = points < 0  # ramps started before the first edge: value there is slope·(x − p)
    cell = np.where(below, 0, np.floor(points)).astype(np.int64)
    # CDF(j) = Σ_{p_i < j} slope_i (j − p_i) = j·S0(j) − S1(j)
    s0 = np.bincount(cell + np.where(below, 0, 1), weights=slopes, minlength=n + 1)[:n]
    s1 = np.bincount(cell + np.where(below, 0, 1), weights=slopes * points, minlength=n + 1)[:n]
    j = np.arange(n, dtype=float)
    return j * np.cumsum(s0) - np.cumsum(s1)


def ct_csa_static_bin_probabilities(delta_ppm: float, p_ppm: float, eta_q: float, zeta_ppm: float, eta_csa: float,
                                    euler: tuple[float, float, float], edges: np.ndarray, n_phi: int | None = None,
                                    n_u: int = 256) -> np.ndarray:
    """Fraction of a static CT + CSA powder pattern in each bin (ppm edges)."""
    edges = np.asarray(edges, dtype=float)
    r = np.asarray(rotation_from_euler(*euler), dtype=float)
    u = np.linspace(0.0, 1.0, n_u + 1)
    if n_phi is None:
        width = abs(p_ppm) * 4.0 + abs(zeta_ppm) * 1.5
        n_phi = 4 * adaptive_n_alpha(width, edges[1] - edges[0])
    phi = (np.arange(n_phi) + 0.5) * 2.0 * np.pi / n_phi
    a, b, c = ct_coefficients(eta_q, np.cos(2.0 * phi)[:, None], "static")
    u2 = u[None, :] ** 2
    nu = delta_ppm + p_ppm * (a * u2 * u2 + b * u2 + c)
    sin_t = np.broadcast_to(np.sqrt(1.0 - u2), (n_phi, n_u + 1))
    shape = (n_phi, n_u + 1)
    field = np.stack([sin_t * np.cos(phi)[:, None], sin_t * np.sin(phi)[:, None], np.broadcast_to(u[None, :], shape)],
                     axis=-1)
    components = field @ r  # (n_phi, n_u+1, 3): b·e_x, b·e_y, b·e_z
    principal = np.array([-zeta_ppm * (1 + eta_csa) / 2, -zeta_ppm * (1 - eta_csa) / 2, zeta_ppm])
    nu = nu + (components**2) @ principal
    lo = np.minimum(nu[:, :-1], nu[:, 1:]).ravel()
    hi = np.maximum(nu[:, :-1], nu[:, 1:]).ravel()
    mass = np.full(lo.shape, 1.0 / (n_phi * n_u))
    j0 = max(int(np.searchsorted(edges, lo.min(), side="right")) - 1, 0)
    j1 = min(int(np.searchsorted(edges, hi.max(), side="left")), len(edges) - 1)
    out = np.zeros(len(edges) - 1)
    if j1 <= j0:
        return out
    sub = edges[j0:j1 + 1]
    cdf = _segments_cdf(lo, hi, mass, sub)
    # mass that lies below the first window edge counts as already accumulated
    out[j0:j1] = np.diff(cdf)
    return out
