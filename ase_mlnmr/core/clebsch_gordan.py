"""Clebsch–Gordan coefficients in the basis of the project's real spherical harmonics.

Real harmonics (no Condon–Shortley phase) relate to the complex ones (with it) by
``Y^R_lm = Σ_M U_l[m, M] Y^C_lM`` with, for m > 0,
``Y^R_lm = (Y^C_l,-m + (-1)^m Y^C_lm)/√2`` and ``Y^R_l,-m = i(Y^C_l,-m − (-1)^m Y^C_lm)/√2``.

Coupling two real sets of coefficients to a real λ-tensor (λ-SOAP, :mod:`ase_mlnmr.descriptors`)::

    q^{λμ} = Σ_{m1 m2} C^R(l1 m1, l2 m2 | λ μ) c_{l1 m1} c_{l2 m2},
    C^R = U_λ C U*_{l1} U*_{l2}.

For l1 + l2 + λ even C^R is real; for l1 + l2 + λ odd it is purely imaginary and we use
``C^R / i`` (still real, and still equivariant: a constant factor). With c_lm of parity
(−1)^l, features with l1 + l2 even are unchanged by inversion: for even λ they are proper
tensors (EFG, σ(2)), for odd λ pseudotensors (σ(1)).
"""
from __future__ import annotations

from functools import lru_cache
from math import factorial, sqrt

import numpy as np

__all__ = [
    "complex_clebsch_gordan",
    "complex_to_real_matrix",
    "real_clebsch_gordan",
    "coupling_pairs",
]


def complex_clebsch_gordan(j1: int, m1: int, j2: int, m2: int, j: int, m: int) -> float:
    """Ordinary Clebsch–Gordan coefficient ``<j1 m1 j2 m2 | j m>`` (Racah's formula)."""
    if m != m1 + m2 or not (abs(j1 - j2) <= j <= j1 + j2):
        return 0.0
    if abs(m1) > j1 or abs(m2) > j2 or abs(m) > j:
        return 0.0
    prefactor = (2 * j + 1) * factorial(j + j1 - j2) * factorial(j - j1 + j2) * factorial(j1 + j2 - j)
    prefactor /= factorial(j1 + j2 + j + 1)
    prefactor *= (
        factorial(j + m) * factorial(j - m) * factorial(j1 - m1) * factorial(j1 + m1)
        * factorial(j2 - m2) * factorial(j2 + m2)
    )
    total = 0
    for k in range(0, j1 + j2 - j + 1):
        terms = (j1 + j2 - j - k, j1 - m1 - k, j2 + m2 - k, j - j2 + m1 + k, j - j1 - m2 + k)
        if min(terms) < 0:
            continue
        denominator = factorial(k)
        for t in terms:
            denominator *= factorial(t)
        total += (-1) ** k / denominator
    return sqrt(prefactor) * total


@lru_cache(maxsize=None)
def _u_matrix(l: int) -> np.ndarray:
    u = np.zeros((2 * l + 1, 2 * l + 1), dtype=complex)
    inv_sqrt2 = 1.0 / np.sqrt(2.0)
    u[l, l] = 1.0
    for m in range(1, l + 1):
        sign = (-1) ** m
        u[l + m, l - m] = inv_sqrt2
        u[l + m, l + m] = sign * inv_sqrt2
        u[l - m, l - m] = 1j * inv_sqrt2
        u[l - m, l + m] = -1j * sign * inv_sqrt2
    u.setflags(write=False)
    return u


def complex_to_real_matrix(l: int) -> np.ndarray:
    """Unitary ``U_l`` with ``Y^R_lm = Σ_M U_l[m+l, M+l] Y^C_lM`` (rows m, columns M)."""
    return _u_matrix(int(l)).copy()


@lru_cache(maxsize=None)
def _real_cg(l1: int, l2: int, lam: int) -> np.ndarray:
    cg = np.zeros((2 * l1 + 1, 2 * l2 + 1, 2 * lam + 1))
    for m1 in range(-l1, l1 + 1):
        for m2 in range(-l2, l2 + 1):
            m = m1 + m2
            if abs(m) <= lam:
                cg[m1 + l1, m2 + l2, m + lam] = complex_clebsch_gordan(l1, m1, l2, m2, lam, m)
    u1, u2, ul = _u_matrix(l1), _u_matrix(l2), _u_matrix(lam)
    real = np.einsum("mM,aA,bB,ABM->abm", ul, u1.conj(), u2.conj(), cg)
    if (l1 + l2 + lam) % 2 == 1:
        real = real / 1j
    if np.abs(real.imag).max() > 1e-12:
        raise RuntimeError(f"real Clebsch-Gordan ({l1}, {l2} -> {lam}) has an imaginary part")
    out = np.ascontiguousarray(real.real)
    out[np.abs(out) < 1e-15] = 0.0
    out.setflags(write=False)
    return out


def real_clebsch_gordan(l1: int, l2: int, lam: int) -> np.ndarray:
    """Real coupling coefficients ``C^R[m1+l1, m2+l2, μ+λ]`` (see the module docstring)."""
    if not (abs(l1 - l2) <= lam <= l1 + l2):
        raise ValueError(f"({l1}, {l2}) cannot couple to λ={lam}: need |l1-l2| <= λ <= l1+l2")
    return _real_cg(int(l1), int(l2), int(lam)).copy()


def coupling_pairs(l_max: int, lam: int) -> list[tuple[int, int]]:
    """(l1, l2) pairs with l1 <= l2 <= l_max, |l1 − l2| <= λ <= l1 + l2 and l1 + l2 even.

    These are the pairs that give features unchanged by inversion: proper tensors for
    even λ, pseudotensors for odd λ (for l1 == l2 with odd λ only the antisymmetric
    combination of two different channels survives).
    """
    return [
        (l1, l2)
        for l1 in range(l_max + 1)
        for l2 in range(l1, l_max + 1)
        if abs(l1 - l2) <= lam <= l1 + l2 and (l1 + l2) % 2 == 0
    ]
