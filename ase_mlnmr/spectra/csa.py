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

Finite-rate MAS: spinning sidebands from the rotor-phase-averaged Fourier coefficients of
each crystallite's signal over one rotor period (:func:`csa_sideband_intensities`).
"""
from __future__ import annotations

import numpy as np

from .axis import PPMAxis
from .central_transition import _measure_below, adaptive_n_alpha, alpha_nodes
from .sites import SiteLike, as_sites

__all__ = ["csa_bin_probabilities", "csa_static_spectrum", "isotropic_spectrum", "principal_shifts",
           "csa_sideband_intensities", "csa_mas_spectrum"]


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


def _d2_rank2(beta: np.ndarray) -> dict:
    """Reduced Wigner elements d²_{m m'}(β) (m ∈ {0, ±2}, m' ∈ {±1, ±2}) and d²_{m'0}."""
    c, s = np.cos(beta), np.sin(beta)
    d = {(2, 2): (1 + c) ** 2 / 4, (2, 1): -(1 + c) * s / 2, (2, -1): -(1 - c) * s / 2, (2, -2): (1 - c) ** 2 / 4,
         (0, 1): np.sqrt(1.5) * s * c, (0, -1): -np.sqrt(1.5) * s * c, (0, 2): np.sqrt(3 / 8) * s**2,
         (0, -2): np.sqrt(3 / 8) * s**2}
    for mp in (1, -1, 2, -2):  # d_{-2, m'} = (-1)^{m'} d_{2, -m'}
        d[(-2, mp)] = (-1) ** mp * d[(2, -mp)]
    return d


def csa_sideband_intensities(zeta_hz: float, eta: float, spinning_rate_Hz: float, n_alpha: int = 48,
                             n_beta: int = 48, n_time: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Spinning-sideband orders N and powder intensities I_N (Σ I_N = 1) of a spin-½ CSA
    under MAS at ``spinning_rate_Hz``, ζ in Hz (ζδ·ν_ref·1e-6).

    Crystallite (α, β) of the CSA frame in the rotor frame: ν(t) = νiso + ζ Σ_{m'≠0}
    R_{m'} d²_{m'0}(θm) e^{−im'ωr t}, R_{m'} = Σ_{m=0,±2} ρ_m e^{−imα} d²_{mm'}(β),
    ρ_0 = 1, ρ_±2 = η/√6 (the static limit is δiso + (ζ/2)(3cos²β − 1 + η sin²β cos2α)).
    With f(t) = exp(i∫ν_aniso dt) = Σ_N F_N e^{iNωr t}, the rotor-phase (γ) averaged
    intensity of sideband N is |F_N|² (Maricq & Waugh, J. Chem. Phys. 70, 3300 (1979));
    (α, cos β) by midpoint rules on [0, π) × [0, 1].
    """
    if not spinning_rate_Hz > 0:
        raise ValueError(f"spinning rate must be positive (Hz), got {spinning_rate_Hz}")
    alpha = (np.arange(n_alpha) + 0.5) * np.pi / n_alpha
    beta = np.arccos((np.arange(n_beta) + 0.5) / n_beta)
    a, b = np.meshgrid(alpha, beta, indexing="ij")
    a, b = a.ravel(), b.ravel()
    d = _d2_rank2(b)
    rho = {0: 1.0, 2: eta / np.sqrt(6), -2: eta / np.sqrt(6)}
    theta_m = np.arccos(1 / np.sqrt(3))
    d_rotor = _d2_rank2(np.array([theta_m]))
    d_m0 = {1: -d_rotor[(0, 1)][0], -1: -d_rotor[(0, -1)][0], 2: d_rotor[(0, 2)][0], -2: d_rotor[(0, -2)][0]}
    t = np.arange(n_time) / n_time  # in rotor periods
    phase = np.zeros((len(a), n_time))
    for mp in (1, -1, 2, -2):
        r = sum(rho[m] * np.exp(-1j * m * a) * d[(m, mp)] for m in (0, 2, -2))
        amp = zeta_hz * r * d_m0[mp]  # Hz
        # 2π ∫0^t e^{−i m′ 2π νr t′} dt′ = (e^{−i m′ 2π t/T} − 1)/(−i m′ νr)  (rad per Hz of amp)
        phase += np.real(amp[:, None] * (np.exp(-1j * mp * 2 * np.pi * t)[None, :] - 1.0) / (-1j * mp * spinning_rate_Hz))
    f = np.exp(1j * phase)  # phase in rad: 2π ∫ν dt
    coefficients = np.fft.fft(f, axis=1) / n_time  # F_N for N = 0, 1, ..., then negative
    intensity = (np.abs(coefficients) ** 2).mean(axis=0)
    orders = np.fft.fftfreq(n_time, d=1.0 / n_time).astype(int)
    order = np.argsort(orders)
    return orders[order], intensity[order] / intensity.sum()


def csa_mas_spectrum(sites: SiteLike, spectrometer, axis: PPMAxis, spinning_rate_Hz: float,
                     n_alpha: int = 48, n_beta: int = 48, n_time: int = 64) -> np.ndarray:
    """Spin-½ MAS spectrum at a finite spinning rate: per site, the centre band at δiso and
    sidebands at δiso + N·νr/ν_ref·1e6 ppm with the intensities of
    :func:`csa_sideband_intensities` (intensity per ppm, unnormalised)."""
    sites = as_sites(sites)
    nu_ref = spectrometer.nu_ref_Hz
    out = np.zeros(axis.count)
    for i in range(len(sites)):
        orders, inten = csa_sideband_intensities(sites.csa_zeta_ppm[i] * nu_ref * 1e-6, sites.csa_eta[i],
                                                 spinning_rate_Hz, n_alpha, n_beta, n_time)
        keep = inten > 1e-12
        positions = sites.delta_iso_ppm[i] + orders[keep] * spinning_rate_Hz / nu_ref * 1e6
        out += sites.weight[i] * isotropic_spectrum(positions, inten[keep], axis)
    return out
