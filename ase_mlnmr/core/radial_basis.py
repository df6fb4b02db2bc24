"""Spherical Bessel radial basis and the tabulated radial integrals of the SOAP expansion.

Definitions (the SOAP expansion of :mod:`ase_mlnmr.descriptors`):

* Radial basis ``R_nl(r) = N_nl j_l(a_nl r / r_cut)`` with ``a_nl`` the n-th positive root
  of ``j_l`` and ``N_nl = sqrt(2) / (r_cut^(3/2) |j_{l+1}(a_nl)|)``, orthonormal with the r²
  weight on [0, r_cut].
* Radial integral of one Gaussian neighbour at distance d (σ a standard deviation, Å)::

      I_nl(d) = 4π (2πσ²)^(-3/2) e^(-d²/2σ²) ∫_0^rc R_nl(r) e^(-r²/2σ²) i_l(r d/σ²) r² dr

  evaluated in the exponentially scaled form
  ``e^(-(r-d)²/2σ²) [e^(-x) i_l(x)]``, ``x = r d / σ²``, which never overflows.

Optional radial scaling of the neighbour density (Willatt, Musil & Ceriotti, PCCP 20,
29661 (2018)): each neighbour's Gaussian is weighted by ``u(d) = 1 / (1 + (d/r0)^m)``,
which lets near neighbours dominate without shrinking the cut-off.

The Cython core needs ``F_nl(d) = fc(d) u(d) I_nl(d)`` (cut-off function and scaling
folded in) at arbitrary d: it is tabulated on a uniform grid and stored as piecewise cubic polynomials
(``RadialTable``), so that one neighbour costs one table look-up and a few Horner steps.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.optimize import brentq
from scipy.special import ive, spherical_jn

__all__ = [
    "spherical_bessel_roots",
    "radial_basis_normalisation",
    "radial_basis",
    "cutoff_function",
    "radial_scaling_function",
    "scaled_modified_spherical_in",
    "radial_integrals",
    "RadialTable",
    "build_radial_table",
]


@lru_cache(maxsize=64)
def _roots_cached(l_max: int, n_roots: int) -> np.ndarray:
    # Roots of j_l interlace with those of j_{l-1}: start from j_0 (n pi) and bracket.
    count = n_roots + l_max
    previous = np.pi * np.arange(1, count + 1, dtype=float)
    table = np.empty((l_max + 1, n_roots))
    table[0] = previous[:n_roots]
    for l in range(1, l_max + 1):
        current = []
        for k in range(len(previous) - 1):
            current.append(brentq(lambda x: spherical_jn(l, x), previous[k], previous[k + 1], xtol=1e-15))
        previous = np.array(current)
        table[l] = previous[:n_roots]
    table.setflags(write=False)
    return table


def spherical_bessel_roots(l_max: int, n_roots: int) -> np.ndarray:
    """First ``n_roots`` positive roots ``a_nl`` of ``j_l`` for l = 0..l_max, shape (l_max+1, n_roots)."""
    if l_max < 0 or n_roots < 1:
        raise ValueError(f"need l_max >= 0 and n_roots >= 1, got l_max={l_max}, n_roots={n_roots}")
    return _roots_cached(int(l_max), int(n_roots)).copy()


def radial_basis_normalisation(roots: np.ndarray, r_cut: float) -> np.ndarray:
    """``N_nl = sqrt(2) / (r_cut^(3/2) |j_{l+1}(a_nl)|)`` for a (l_max+1, n_max) root table."""
    l_values = np.arange(roots.shape[0])[:, None]
    return np.sqrt(2.0) / (r_cut**1.5 * np.abs(spherical_jn(l_values + 1, roots)))


def radial_basis(r: np.ndarray, r_cut: float, n_max: int, l_max: int) -> np.ndarray:
    """``R_nl(r)`` on points r (Å), shape (l_max+1, n_max, len(r)), units Å^(-3/2)."""
    r = np.asarray(r, dtype=float)
    roots = spherical_bessel_roots(l_max, n_max)
    norms = radial_basis_normalisation(roots, r_cut)
    l_values = np.arange(l_max + 1)[:, None, None]
    return norms[:, :, None] * spherical_jn(l_values, roots[:, :, None] * r[None, None, :] / r_cut)


def cutoff_function(r: np.ndarray, r_cut: float) -> np.ndarray:
    """Smooth cut-off ``fc(r) = (cos(π r / r_cut) + 1)/2`` for r < r_cut, 0 beyond."""
    r = np.asarray(r, dtype=float)
    return np.where(r < r_cut, 0.5 * (np.cos(np.pi * r / r_cut) + 1.0), 0.0)


def radial_scaling_function(r: np.ndarray, r0: float, exponent: float) -> np.ndarray:
    """Neighbour weight ``u(r) = 1 / (1 + (r / r0)^m)`` (r, r0 in Å; u(0) = 1, u(r0) = 1/2)."""
    r = np.asarray(r, dtype=float)
    return 1.0 / (1.0 + (r / r0) ** exponent)


def scaled_modified_spherical_in(l: np.ndarray | int, x: np.ndarray) -> np.ndarray:
    """``e^(-x) i_l(x)`` for x >= 0, through ``i_l(x) = sqrt(π/(2x)) I_{l+1/2}(x)``.

    Finite for any x (no overflow at x ~ 1e3); the x -> 0 limit is 1 for l = 0, else 0.
    """
    x = np.asarray(x, dtype=float)
    l_arr = np.asarray(l)
    safe_x = np.maximum(x, 1e-300)
    value = np.sqrt(np.pi / (2.0 * safe_x)) * ive(l_arr + 0.5, safe_x)
    at_zero = np.where(l_arr == 0, 1.0, 0.0)
    return np.where(x > 1e-200, value, at_zero)


def _quadrature(r_cut: float, sigma: float, n_max: int, l_max: int) -> tuple[np.ndarray, np.ndarray]:
    # Gauss-Legendre on [0, r_cut]; resolve both the Gaussian (width sigma) and the
    # oscillations of the highest radial function (root a ~ (n_max + l_max/2) π).
    highest_root = (n_max + 0.5 * l_max + 1.0) * np.pi
    n_points = int(max(200, 16 * r_cut / sigma, 8 * highest_root))
    nodes, weights = np.polynomial.legendre.leggauss(n_points)
    r = 0.5 * r_cut * (nodes + 1.0)
    return r, 0.5 * r_cut * weights


def radial_integrals(d: np.ndarray, r_cut: float, sigma: float, n_max: int, l_max: int) -> np.ndarray:
    """``I_nl(d)`` for neighbour distances d (Å), shape (len(d), l_max+1, n_max).

    Direct quadrature of the definition in the module docstring (no cut-off function).
    """
    d = np.atleast_1d(np.asarray(d, dtype=float))
    r, w = _quadrature(r_cut, sigma, n_max, l_max)
    basis = radial_basis(r, r_cut, n_max, l_max)  # (L, N, R)
    prefactor = 4.0 * np.pi * (2.0 * np.pi * sigma**2) ** -1.5
    gaussian = np.exp(-((r[None, :] - d[:, None]) ** 2) / (2.0 * sigma**2))  # (D, R)
    x = r[None, :] * d[:, None] / sigma**2
    out = np.empty((len(d), l_max + 1, n_max))
    for l in range(l_max + 1):
        kernel = gaussian * scaled_modified_spherical_in(l, x) * (w * r**2)[None, :]  # (D, R)
        out[:, l, :] = prefactor * kernel @ basis[l].T
    return out


@dataclass(frozen=True)
class RadialTable:
    """Piecewise-cubic table of ``F_k(d) = fc(d) u(d) I_nl(d)``, k = l*n_max + n.

    ``coefficients[i, k, :] = (c3, c2, c1, c0)``: on interval i,
    ``F_k(d) = ((c3 t + c2) t + c1) t + c0`` with ``t = d - i*step``.
    """

    r_cut: float
    sigma: float
    n_max: int
    l_max: int
    step: float
    coefficients: np.ndarray  # (n_intervals, (l_max+1)*n_max, 4), C-contiguous float64

    @property
    def n_intervals(self) -> int:
        return self.coefficients.shape[0]

    def evaluate(self, d: np.ndarray) -> np.ndarray:
        """Evaluate the table in NumPy (reference for tests), shape (len(d), l_max+1, n_max)."""
        d = np.atleast_1d(np.asarray(d, dtype=float))
        index = np.minimum((d / self.step).astype(int), self.n_intervals - 1)
        t = (d - index * self.step)[:, None]
        c = self.coefficients[index]
        values = ((c[..., 0] * t + c[..., 1]) * t + c[..., 2]) * t + c[..., 3]
        values[d >= self.r_cut] = 0.0
        return values.reshape(len(d), self.l_max + 1, self.n_max)


def build_radial_table(
    r_cut: float, sigma: float, n_max: int, l_max: int, points_per_sigma: int = 40,
    radial_scaling: tuple[float, float] | None = None,
) -> RadialTable:
    """Tabulate ``fc(d) u(d) I_nl(d)`` on [0, r_cut] as a cubic spline.

    ``radial_scaling``: ``(r0, m)`` of :func:`radial_scaling_function`, or None (u = 1).

    The grid step is ``min(σ / points_per_sigma, r_cut / 256)``; with the default the
    interpolation error is ~1e-8 relative to the largest value (checked in the tests).
    """
    n_intervals = int(np.ceil(max(256, points_per_sigma * r_cut / sigma)))
    grid = np.linspace(0.0, r_cut, n_intervals + 1)
    values = radial_integrals(grid, r_cut, sigma, n_max, l_max)
    weight = cutoff_function(grid, r_cut)
    if radial_scaling is not None:
        weight = weight * radial_scaling_function(grid, *radial_scaling)
    values *= weight[:, None, None]
    spline = CubicSpline(grid, values.reshape(len(grid), -1), axis=0, bc_type="not-a-knot")
    # spline.c has shape (4, n_intervals, n_functions) with the highest power first.
    coefficients = np.ascontiguousarray(np.transpose(spline.c, (1, 2, 0)))
    return RadialTable(
        r_cut=float(r_cut),
        sigma=float(sigma),
        n_max=int(n_max),
        l_max=int(l_max),
        step=float(grid[1] - grid[0]),
        coefficients=coefficients,
    )
