"""Magnetic shielding tensors: isotropic value, shift referencing, Haeberlen, Mehring and
Maryland (Herzfeld-Berger) parameters. All in ppm, vectorised over (..., 3, 3) tensors.

Conventions (IUPAC, Harris et al., Pure Appl. Chem. 80, 59 (2008),
https://doi.org/10.1351/pac200880010059; ``docs/conventions.md``):

* principal values are those of the symmetric part ``(s + s^T)/2``; the antisymmetric
  part does not enter any of the parameters below;
* Haeberlen: ``|szz - siso| >= |sxx - siso| >= |syy - siso|``, reduced anisotropy
  ``zeta = szz - siso``, anisotropy ``Delta = 3 zeta / 2``, asymmetry
  ``eta = (syy - sxx)/zeta in [0, 1]``, with ``eta := 0`` for an isotropic tensor (zeta = 0);
* Mehring: ``s11 <= s22 <= s33``; for shifts ``d11 >= d22 >= d33`` (d11 from s11);
* Maryland: span ``Omega = s33 - s11 >= 0``, skew ``kappa = 3 (siso - s22)/Omega in
  [-1, 1]``, with ``kappa := 0`` for an isotropic tensor (Omega = 0).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..core.spherical_tensors import as_tensors, isotropic_part
from .orientation import (
    is_isotropic,
    scalar_if_0d,
    ZERO_ANISOTROPY_TOL,
    principal_frame,
)

__all__ = [
    "Haeberlen",
    "Mehring",
    "ShiftPrincipal",
    "Maryland",
    "isotropic_shielding",
    "shift_from_shielding",
    "shielding_from_shift",
    "calibrated_shift",
    "haeberlen",
    "mehring",
    "mehring_shifts",
    "maryland",
]


class Haeberlen(NamedTuple):
    """Haeberlen parameters (ppm): ``iso``, reduced anisotropy ``zeta``, anisotropy
    ``delta_sigma`` (= 3 zeta/2) and dimensionless asymmetry ``eta``."""

    iso: np.ndarray
    zeta: np.ndarray
    delta_sigma: np.ndarray
    eta: np.ndarray


class Mehring(NamedTuple):
    """Principal shieldings (ppm), ``sigma_11 <= sigma_22 <= sigma_33``."""

    sigma_11: np.ndarray
    sigma_22: np.ndarray
    sigma_33: np.ndarray


class ShiftPrincipal(NamedTuple):
    """Principal shifts (ppm), ``delta_11 >= delta_22 >= delta_33``."""

    delta_11: np.ndarray
    delta_22: np.ndarray
    delta_33: np.ndarray


class Maryland(NamedTuple):
    """Maryland / Herzfeld-Berger parameters: ``iso`` (ppm), ``span`` Omega (ppm), ``skew`` kappa."""

    iso: np.ndarray
    span: np.ndarray
    skew: np.ndarray


def _as_float(x, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def isotropic_shielding(ms: np.ndarray) -> np.ndarray:
    """Isotropic shielding ``siso = tr(s)/3`` (ppm) of (..., 3, 3) tensors."""
    return scalar_if_0d(isotropic_part(as_tensors(ms, "ms", finite=True)))


def shift_from_shielding(sigma, sigma_ref, exact: bool = True) -> np.ndarray:
    """Chemical shift (ppm) from shielding (ppm).

    exact: ``d = (sref - s) / (1 - sref * 1e-6)``; approximate (``exact=False``):
    ``d = sref - s``. Works on isotropic values and principal components alike.
    """
    s = _as_float(sigma, "sigma")
    ref = _as_float(sigma_ref, "sigma_ref")
    delta = ref - s
    if exact:
        delta = delta / (1.0 - ref * 1e-6)
    return scalar_if_0d(delta)


def shielding_from_shift(delta, sigma_ref, exact: bool = True) -> np.ndarray:
    """Inverse of :func:`shift_from_shielding`: ``s = sref - d (1 - sref*1e-6)`` (exact) or
    ``s = sref - d`` (ppm)."""
    d = _as_float(delta, "delta")
    ref = _as_float(sigma_ref, "sigma_ref")
    return scalar_if_0d(ref - d * (1.0 - ref * 1e-6) if exact else ref - d)


def calibrated_shift(sigma_iso, slope_a, sigma_ref) -> np.ndarray:
    """Calibrated isotropic shift ``d_iso = -a (s_iso - s_ref)`` (ppm), with the slope
    ``a`` (dimensionless) and ``s_ref`` (ppm) fitted per nucleus on reference crystals."""
    s = _as_float(sigma_iso, "sigma_iso")
    a = _as_float(slope_a, "slope_a")
    ref = _as_float(sigma_ref, "sigma_ref")
    return scalar_if_0d(-a * (s - ref))


def haeberlen(ms: np.ndarray) -> Haeberlen:
    """Haeberlen parameters of the symmetric part of shielding tensors (ppm).

    ``zeta = szz - siso``, ``Delta = 3 zeta/2``, ``eta = (syy - sxx)/zeta`` with
    ``|szz - siso| >= |sxx - siso| >= |syy - siso|``; ``eta = 0`` where the tensor is
    isotropic (``|zeta| <= 1e-12 ||s_sym||_F``). eta is clipped to [0, 1] (rounding).
    """
    values, _ = principal_frame(as_tensors(ms, "ms", finite=True), "haeberlen")
    sxx, syy, szz = values[..., 0], values[..., 1], values[..., 2]
    iso = values.mean(axis=-1)
    zeta = szz - iso
    isotropic = is_isotropic(values)
    safe = np.where(isotropic, 1.0, zeta)
    eta = np.where(isotropic, 0.0, np.clip((syy - sxx) / safe, 0.0, 1.0))
    return Haeberlen(scalar_if_0d(iso), scalar_if_0d(zeta), scalar_if_0d(1.5 * zeta), scalar_if_0d(eta))


def mehring(ms: np.ndarray) -> Mehring:
    """Principal shieldings of the symmetric part, ascending ``s11 <= s22 <= s33`` (ppm)."""
    values, _ = principal_frame(as_tensors(ms, "ms", finite=True), "mehring")
    return Mehring(*(scalar_if_0d(values[..., i]) for i in range(3)))


def mehring_shifts(ms: np.ndarray, sigma_ref, exact: bool = True) -> ShiftPrincipal:
    """Principal shifts ``d_ii = shift_from_shielding(s_ii, sigma_ref)`` ordered
    ``d11 >= d22 >= d33`` (ppm; d11 comes from the least shielded s11)."""
    m = mehring(ms)
    return ShiftPrincipal(*(shift_from_shielding(s, sigma_ref, exact) for s in m))


def maryland(ms: np.ndarray) -> Maryland:
    """Maryland convention: ``Omega = s33 - s11 >= 0``, ``kappa = 3 (siso - s22)/Omega``
    (= ``3 (d22 - diso)/Omega`` for shifts) in [-1, 1]; ``kappa = 0`` where the tensor is
    isotropic (``Omega <= 1e-12 ||s_sym||_F``)."""
    values, _ = principal_frame(as_tensors(ms, "ms", finite=True), "mehring")
    s11, s22, s33 = values[..., 0], values[..., 1], values[..., 2]
    iso = values.mean(axis=-1)
    span = s33 - s11
    norm = np.sqrt((values**2).sum(axis=-1))
    isotropic = span <= ZERO_ANISOTROPY_TOL * norm
    kappa = np.where(isotropic, 0.0, np.clip(3.0 * (iso - s22) / np.where(isotropic, 1.0, span), -1.0, 1.0))
    return Maryland(scalar_if_0d(iso), scalar_if_0d(span), scalar_if_0d(kappa))
