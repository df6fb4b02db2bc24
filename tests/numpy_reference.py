"""Slow, independent pure-NumPy/SciPy evaluation of eq. 1–3 (Charpentier 2025) as
defined in NMR_CONVENTIONS.md, for small clusters. Shares no code with the Cython core:
harmonics from scipy's complex ``sph_harm_y``, radial integrals by direct quadrature of
the definition, couplings from sympy's Clebsch–Gordan coefficients."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.integrate import quad
from scipy.special import ive, spherical_jn, sph_harm_y


def real_harmonics(vectors: np.ndarray, l: int) -> np.ndarray:
    """Real Y_lm (no Condon–Shortley phase) from scipy's complex ones, shape (n, 2l+1)."""
    r = np.linalg.norm(vectors, axis=1)
    theta = np.arccos(np.clip(vectors[:, 2] / r, -1, 1))
    phi = np.arctan2(vectors[:, 1], vectors[:, 0])
    out = np.empty((len(vectors), 2 * l + 1))
    for m in range(-l, l + 1):
        y = sph_harm_y(l, abs(m), theta, phi)
        if m == 0:
            out[:, l] = y.real
        elif m > 0:
            out[:, l + m] = np.sqrt(2) * (-1) ** m * y.real
        else:
            out[:, l + m] = np.sqrt(2) * (-1) ** m * y.imag
    return out


def bessel_root(l: int, n: int) -> float:
    """n-th positive root (n from 1) of j_l by scanning and bisection."""
    x = np.linspace(0.1, (n + l + 2) * np.pi, 20000)
    values = spherical_jn(l, x)
    crossings = np.flatnonzero(np.sign(values[:-1]) != np.sign(values[1:]))
    lo, hi = x[crossings[n - 1]], x[crossings[n - 1] + 1]
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if np.sign(spherical_jn(l, mid)) == np.sign(spherical_jn(l, lo)):
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def radial_integral(d: float, n: int, l: int, r_cut: float, sigma: float) -> float:
    """I_nl(d) by adaptive quadrature of the definition (n from 0)."""
    a = bessel_root(l, n + 1)
    norm = np.sqrt(2) / (r_cut**1.5 * abs(spherical_jn(l + 1, a)))

    def integrand(r):
        x = r * d / sigma**2
        scaled_i = np.sqrt(np.pi / (2 * x)) * ive(l + 0.5, x) if x > 0 else float(l == 0)
        return norm * spherical_jn(l, a * r / r_cut) * np.exp(-((r - d) ** 2) / (2 * sigma**2)) * scaled_i * r**2

    value, _ = quad(integrand, 0, r_cut, limit=400, epsabs=1e-13, epsrel=1e-11)
    return 4 * np.pi * (2 * np.pi * sigma**2) ** -1.5 * value


def expansion(vectors, species, n_species, r_cut, sigma, n_max, l_max, scaling=None):
    """c[s, n, l, m + l_max] for one centre (zero-padded in m); ``scaling=(r0, m)``
    weights each neighbour by 1 / (1 + (d/r0)^m) (Willatt et al. 2018)."""
    c = np.zeros((n_species, n_max, l_max + 1, 2 * l_max + 1))
    for vec, s in zip(vectors, species):
        d = np.linalg.norm(vec)
        if d >= r_cut:
            continue
        fc = 0.5 * (np.cos(np.pi * d / r_cut) + 1)
        if scaling is not None:
            fc /= 1.0 + (d / scaling[0]) ** scaling[1]
        for l in range(l_max + 1):
            y = real_harmonics(vec[None, :], l)[0]
            for n in range(n_max):
                c[s, n, l, l_max - l: l_max + l + 1] += fc * radial_integral(d, n, l, r_cut, sigma) * y
    return c


def power_spectrum(c: np.ndarray) -> np.ndarray:
    """Unique p^{ab}_l (a <= b, l outermost, √2 off the diagonal) from c[s, n, l, m]."""
    n_species, n_max, n_l, _ = c.shape
    rows = c.reshape(n_species * n_max, n_l, -1)
    out = []
    for l in range(n_l):
        gram = rows[:, l, :] @ rows[:, l, :].T
        a, b = np.triu_indices(len(rows))
        out.append(np.where(a == b, 1.0, np.sqrt(2)) * gram[a, b])
    return np.concatenate(out)


@lru_cache(maxsize=None)
def sympy_real_cg(l1: int, l2: int, lam: int) -> np.ndarray:
    """Real-basis coupling built from sympy's complex Clebsch–Gordan coefficients."""
    from sympy.physics.quantum.cg import CG

    def u(l):
        mat = np.zeros((2 * l + 1, 2 * l + 1), complex)
        mat[l, l] = 1
        for m in range(1, l + 1):
            mat[l + m, l - m] = 1 / np.sqrt(2)
            mat[l + m, l + m] = (-1) ** m / np.sqrt(2)
            mat[l - m, l - m] = 1j / np.sqrt(2)
            mat[l - m, l + m] = -1j * (-1) ** m / np.sqrt(2)
        return mat

    cg = np.zeros((2 * l1 + 1, 2 * l2 + 1, 2 * lam + 1))
    for m1 in range(-l1, l1 + 1):
        for m2 in range(-l2, l2 + 1):
            if abs(m1 + m2) <= lam:
                cg[m1 + l1, m2 + l2, m1 + m2 + lam] = float(CG(l1, m1, l2, m2, lam, m1 + m2).doit())
    real = np.einsum("mM,aA,bB,ABM->abm", u(lam), u(l1).conj(), u(l2).conj(), cg)
    if (l1 + l2 + lam) % 2:
        real = real / 1j
    return real.real


def lambda_features(c: np.ndarray, lam: int, pairs, two_body: bool = True) -> np.ndarray:
    """λ-SOAP features (2λ+1, n_features) in the package's documented order."""
    n_species, n_max, n_l, width = c.shape
    l_max = n_l - 1
    rows = c.reshape(n_species * n_max, n_l, width)
    n_rows = len(rows)
    columns = []
    if two_body:
        columns.extend(rows[:, lam, l_max - lam: l_max + lam + 1])  # each (2λ+1,)
    for l1, l2 in pairs:
        cg = sympy_real_cg(l1, l2, lam)
        c1 = rows[:, l1, l_max - l1: l_max + l1 + 1]
        c2 = rows[:, l2, l_max - l2: l_max + l2 + 1]
        for a in range(n_rows):
            start = 0 if l1 != l2 else (a if lam % 2 == 0 else a + 1)
            for b in range(start, n_rows):
                scale = 1.0 if (l1 == l2 and a == b) else np.sqrt(2)
                columns.append(scale * np.einsum("i,j,ijk->k", c1[a], c2[b], cg))
    return np.array(columns).T
