"""Central-transition (−½ ↔ ½) lineshapes of half-integer quadrupolar nuclei, second
order, under fast (infinite-rate) MAS or static.

Frequency of a crystallite whose rotor axis (MAS) or field (static) has polar angles
(α, β) in the EFG principal frame (Freude & Haase, "Quadrupole effects in solid-state
NMR"; ``NMR_CONVENTIONS.md``, section "Central transition")::

    ν = δiso + P·(A cos⁴β + B cos²β + C),   P = −(νQ²/(6ν0))·[I(I+1) − ¾]

with νQ = 3|CQ|/(2I(2I−1)), ν0 the bare-γ Larmor frequency and, for MAS,
A = 21/16 − (7/8)η cos2α + (7/48)η²cos²2α, B = −9/8 + η²/12 + η cos2α − (7/24)η²cos²2α,
C = 5/16 − (1/8)η cos2α + (7/48)η²cos²2α; static:
A = −27/8 + (9/4)η cos2α − (3/8)η²cos²2α, B = 15/4 − η²/2 − 2η cos2α + (3/4)η²cos²2α,
C = −3/8 + η²/3 − (1/4)η cos2α − (3/8)η²cos²2α. P and all shifts are converted to ppm
with the reference frequency ν_ref (ppm axis). The centre of gravity is δiso + δQIS,
δQIS from :func:`ase_mlnmr.nmr.quadrupolar_induced_shift` (× ν0/ν_ref on this axis).

Powder average ("exact-in-β" scheme): for each azimuth α the frequency is a quadratic in
s = cos²β, so the fraction of orientations (uniform in u = cosβ ∈ [0, 1]) whose frequency
lies below a bin edge is found in closed form from the roots of that quadratic. Bin
integrals are therefore exact in β; α is integrated by the midpoint rule with ``n_alpha``
nodes on [0, π/2] (the frequency depends on α through cos2α only). The error of this
scheme against ``n_alpha`` is measured in ``docs/spectra.md``.
"""
from __future__ import annotations

import numpy as np

from ..nmr.efg import quadrupolar_frequency, quadrupolar_induced_shift, quadrupolar_product
from .axis import PPMAxis, Spectrometer
from .sites import SiteLike, as_sites

__all__ = ["MODES", "ct_coefficients", "ct_prefactor_ppm", "ct_centre_of_gravity_ppm",
           "quadrupolar_shift_ppm", "ct_bin_probabilities", "ct_spectrum_per_site", "adaptive_n_alpha",
           "alpha_nodes"]

MODES = ("mas", "static")


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return mode


def ct_coefficients(eta, cos2a, mode: str = "mas") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A, B, C) of the CT frequency ``P(A cos⁴β + B cos²β + C)`` (module docstring)."""
    eta = np.asarray(eta, dtype=float)
    c = np.asarray(cos2a, dtype=float)
    e2c2 = eta**2 * c**2
    if _check_mode(mode) == "mas":
        a = 21.0 / 16.0 - 7.0 / 8.0 * eta * c + 7.0 / 48.0 * e2c2
        b = -9.0 / 8.0 + eta**2 / 12.0 + eta * c - 7.0 / 24.0 * e2c2
        cc = 5.0 / 16.0 - eta * c / 8.0 + 7.0 / 48.0 * e2c2
    else:
        a = -27.0 / 8.0 + 9.0 / 4.0 * eta * c - 3.0 / 8.0 * e2c2
        b = 15.0 / 4.0 - eta**2 / 2.0 - 2.0 * eta * c + 3.0 / 4.0 * e2c2
        cc = -3.0 / 8.0 + eta**2 / 3.0 - eta * c / 4.0 - 3.0 / 8.0 * e2c2
    return a, b, cc


def ct_prefactor_ppm(abs_cq_MHz, spectrometer: Spectrometer) -> np.ndarray:
    """P = −(νQ²/(6ν0))[I(I+1) − ¾] in ppm of ν_ref (νQ = 3|CQ|/(2I(2I−1)), ν0 bare γ)."""
    spin = spectrometer.isotope.spin
    nu_q_hz = np.asarray(quadrupolar_frequency(np.abs(np.asarray(abs_cq_MHz, dtype=float)), spin)) * 1e6
    p_hz = -(nu_q_hz**2) / (6.0 * spectrometer.nu0_Hz) * (spin * (spin + 1.0) - 0.75)
    return p_hz / spectrometer.nu_ref_Hz * 1e6


def quadrupolar_shift_ppm(cq_MHz, eta_q, spectrometer: Spectrometer) -> np.ndarray:
    """Quadrupolar-induced shift δQIS of the CT centre of gravity on the ppm axis of ν_ref:
    ``δQIS = −(3/40)(PQ/ν0)²[I(I+1) − ¾]/[I²(2I−1)²]·1e6 · ν0/ν_ref`` (ppm)."""
    pq = quadrupolar_product(np.abs(np.asarray(cq_MHz, dtype=float)), eta_q)
    qis = quadrupolar_induced_shift(pq, spectrometer.isotope, spectrometer.b0_tesla)
    return np.asarray(qis) * spectrometer.nu0_Hz / spectrometer.nu_ref_Hz


def ct_centre_of_gravity_ppm(delta_iso_ppm, cq_MHz, eta_q, spectrometer: Spectrometer) -> np.ndarray:
    """Analytic CT centre of gravity δiso + δQIS (ppm), MAS or static alike."""
    return np.asarray(delta_iso_ppm, dtype=float) + quadrupolar_shift_ppm(cq_MHz, eta_q, spectrometer)


def alpha_nodes(n_alpha: int) -> np.ndarray:
    """cos2α at the midpoint nodes α_k = (k + ½)·π/(2 n_alpha), k < n_alpha."""
    if int(n_alpha) < 1:
        raise ValueError(f"n_alpha must be a positive integer, got {n_alpha}")
    alpha = (np.arange(int(n_alpha)) + 0.5) * (0.5 * np.pi / int(n_alpha))
    return np.cos(2.0 * alpha)


def _measure_below(a2, a1, a0, x) -> np.ndarray:
    """Length of {u ∈ [0, 1] : a2 u⁴ + a1 u² + a0 ≤ x} (broadcast arrays).

    f(s) = a2 s² + a1 s + a0 is split at its vertex into monotone pieces of s ∈ [0, 1];
    on each piece the crossing s_x is a root of f(s) = x (stable quadratic formula) and the
    length in u is a difference of square roots.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        vertex = np.where(a2 != 0.0, -a1 / (2.0 * a2), np.inf)
    split = np.where((vertex > 0.0) & (vertex < 1.0), vertex, 1.0)
    c = a0 - x
    disc = np.sqrt(np.maximum(a1 * a1 - 4.0 * a2 * c, 0.0))
    q = -0.5 * (a1 + np.where(a1 >= 0.0, disc, -disc))
    with np.errstate(divide="ignore", invalid="ignore"):
        r1 = np.where(a2 != 0.0, q / a2, np.inf)
        r2 = np.where(q != 0.0, c / q, np.inf)
    total = 0.0
    for lo, hi in ((0.0, split), (split, 1.0)):
        lo = np.broadcast_to(lo, np.shape(split))
        f_lo = (a2 * lo + a1) * lo + a0
        f_hi = (a2 * hi + a1) * hi + a0
        # the root inside [lo, hi]: the one closer to the interval, clipped into it
        d1 = np.maximum(lo - r1, r1 - hi)
        d2 = np.maximum(lo - r2, r2 - hi)
        root = np.clip(np.where(np.nan_to_num(d1, nan=np.inf) <= np.nan_to_num(d2, nan=np.inf), r1, r2), lo, hi)
        root = np.nan_to_num(root, nan=0.0)
        s_lo, s_hi, s_root = np.sqrt(lo), np.sqrt(hi), np.sqrt(root)
        increasing = f_hi >= f_lo
        f_min = np.where(increasing, f_lo, f_hi)
        f_max = np.where(increasing, f_hi, f_lo)
        partial = np.where(increasing, s_root - s_lo, s_hi - s_root)
        piece = np.where(x <= f_min, 0.0, np.where(x >= f_max, s_hi - s_lo, partial))
        total = total + piece
    return total


def _coefficients_ppm(cos2a, eta, p_ppm, delta_ppm, mode):
    a, b, c = ct_coefficients(eta, cos2a, mode)
    return p_ppm * a, p_ppm * b, p_ppm * c + delta_ppm


def _extent(a2, a1, a0) -> tuple[float, float]:
    """Lowest and highest frequency over the α slices (s = 0, 1 and the vertex)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        vertex = np.clip(np.where(a2 != 0.0, -a1 / (2.0 * a2), 0.0), 0.0, 1.0)
    values = np.concatenate([a0, a2 + a1 + a0, (a2 * vertex + a1) * vertex + a0], axis=1)
    return float(values.min()), float(values.max())


def ct_bin_probabilities(delta_ppm: float, p_ppm: float, eta: float, edges: np.ndarray, mode: str = "mas",
                         n_alpha: int | None = None) -> np.ndarray:
    """Fraction of the powder in each bin [edges[j], edges[j+1]) for one site (ppm).

    delta_ppm: isotropic shift; p_ppm: prefactor P (ppm, :func:`ct_prefactor_ppm`); eta:
    η. The fractions sum to 1 when the line lies inside the edges. ``n_alpha=None``:
    :func:`adaptive_n_alpha` of the line's width (≤ 2.5|P|).
    """
    edges = np.asarray(edges, dtype=float)
    if n_alpha is None:
        probe = np.concatenate([[-1.0, 1.0], alpha_nodes(64)])[:, None]
        low, high = _extent(*_coefficients_ppm(probe, eta, p_ppm, delta_ppm, mode))
        n_alpha = adaptive_n_alpha(high - low, edges[1] - edges[0])
    a2, a1, a0 = _coefficients_ppm(alpha_nodes(n_alpha)[:, None], eta, p_ppm, delta_ppm, mode)
    low, high = _extent(a2, a1, a0)
    out = np.zeros(len(edges) - 1)
    j0 = int(np.searchsorted(edges, low, side="right")) - 1
    j1 = int(np.searchsorted(edges, high, side="left"))
    j0, j1 = max(j0, 0), min(j1, len(edges) - 1)
    if j1 < j0:
        return out
    if high - low <= 0.0:  # no quadrupolar broadening: a delta line
        k = j0
        if 0 <= k < len(out) and edges[k] <= low < edges[k + 1]:
            out[k] = 1.0
        return out
    cdf = _measure_below(a2, a1, a0, edges[None, j0:j1 + 1]).mean(axis=0)
    out[j0:j1] = np.diff(cdf)  # mass outside the window is dropped
    return out


def adaptive_n_alpha(width_ppm: float, step_ppm: float) -> int:
    """α nodes for a line ``width_ppm`` wide on bins of ``step_ppm``: ½ node per bin across
    the line, 256 to 4096 (≤ 0.3 % L1 against mrsimulator at density 256 for the reference
    cases, docs/spectra.md)."""
    return int(np.clip(np.ceil(0.5 * abs(width_ppm) / step_ppm), 256, 4096))


def ct_spectrum_per_site(sites: SiteLike, spectrometer: Spectrometer, axis: PPMAxis, mode: str = "mas",
                         n_alpha: int | None = None, progress: bool = False) -> np.ndarray:
    """Exact per-site sum of CT lineshapes on ``axis`` (intensity per ppm, unnormalised:
    each site contributes weight × its fraction in each bin / step). Static sites with a
    CSA use :func:`~ase_mlnmr.spectra.ct_csa.ct_csa_static_bin_probabilities` (relative
    orientation from the site's Euler angles); under fast MAS the CSA averages out."""
    sites = as_sites(sites)
    sites.require_quadrupolar()
    if sites.isotope.name != spectrometer.isotope.name:
        raise ValueError(f"sites are {sites.isotope.name} but the spectrometer is set for {spectrometer.isotope.name}")
    _check_mode(mode)
    p_ppm = ct_prefactor_ppm(sites.abs_cq_MHz, spectrometer)
    edges = axis.edges
    out = np.zeros(axis.count)
    iterator = range(len(sites))
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="sites", unit="site")
    for i in iterator:
        if mode == "static" and sites.csa_zeta_ppm[i] != 0.0:
            from .ct_csa import ct_csa_static_bin_probabilities

            line = ct_csa_static_bin_probabilities(sites.delta_iso_ppm[i], p_ppm[i], sites.eta_q[i],
                                                   sites.csa_zeta_ppm[i], sites.csa_eta[i],
                                                   tuple(sites.euler_angles[i]), edges)
        else:
            line = ct_bin_probabilities(sites.delta_iso_ppm[i], p_ppm[i], sites.eta_q[i], edges, mode, n_alpha)
        out += sites.weight[i] * line
    return out / axis.step_ppm
