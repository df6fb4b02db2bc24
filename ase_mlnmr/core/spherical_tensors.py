"""Irreducible spherical parts of 3x3 Cartesian tensors, in the real-harmonic basis.

A rank-2 Cartesian tensor T splits as T = T(0) + T(1) + T(2) (Ben Mahmoud 2024):

* ``T(0)``: the isotropic part, one number. We return ``iso = tr(T)/3``.
* ``T(1)``: the antisymmetric part A = (T - T^T)/2, equivalent to the axial vector
  ``v_k = 1/2 eps_kij A_ij`` (v_x = A_yz, v_y = A_zx, v_z = A_xy). It is a pseudovector.
* ``T(2)``: the symmetric traceless part S = (T + T^T)/2 - iso*1, with five components.

The spherical components are given in the order m = -l..l of the project's *real*
spherical harmonics (no Condon-Shortley phase, Y_1m ordered (y, z, x)):

* l = 1: ``(v_y, v_z, v_x)``
* l = 2: ``s_m = <S, B_m>_F`` (Frobenius product) with the orthonormal basis
  B_-2 = (xy + yx)/sqrt2, B_-1 = (yz + zy)/sqrt2, B_0 = (2zz - xx - yy)/sqrt6,
  B_1 = (xz + zx)/sqrt2, B_2 = (xx - yy)/sqrt2.

With this choice r^T B_m r = sqrt(8 pi / 15) Y_2m(r) for unit r, with the same positive
constant for every m, so the five components rotate with exactly the same real Wigner
matrix as the l = 2 expansion coefficients c_n2m and the lambda-SOAP features: a linear
model on those features that outputs s_m gives a tensor that turns into R S R^T when the
structure is rotated by R. The map S -> s is an isometry: sum_m s_m^2 = ||S||_F^2.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "L2_BASIS",
    "as_tensors",
    "cartesian_to_spherical",
    "spherical_to_cartesian",
    "isotropic_part",
    "antisymmetric_to_vector",
    "vector_to_antisymmetric",
    "symmetric_traceless_to_l2",
    "l2_to_symmetric_traceless",
]

_S2 = np.sqrt(2.0)
_S6 = np.sqrt(6.0)

#: Orthonormal basis of symmetric traceless 3x3 matrices, index m + 2 for m = -2..2.
L2_BASIS = np.array(
    [
        [[0, 1, 0], [1, 0, 0], [0, 0, 0]],
        [[0, 0, 0], [0, 0, 1], [0, 1, 0]],
        [[-1, 0, 0], [0, -1, 0], [0, 0, 2]],
        [[0, 0, 1], [0, 0, 0], [1, 0, 0]],
        [[1, 0, 0], [0, -1, 0], [0, 0, 0]],
    ],
    dtype=float,
) / np.array([_S2, _S2, _S6, _S2, _S2])[:, None, None]
L2_BASIS.setflags(write=False)


def as_tensors(tensors: np.ndarray, name: str = "tensor", finite: bool = False) -> np.ndarray:
    """``tensors`` as a float array of shape (..., 3, 3) (a single 3x3 is accepted);
    ``ValueError`` names the bad shape, and with ``finite=True`` the index of tensors
    holding NaN or inf."""
    try:
        array = np.asarray(tensors, dtype=float)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: could not convert input to a float array ({exc})") from exc
    if array.ndim < 2 or array.shape[-2:] != (3, 3):
        raise ValueError(f"{name}: expected a 3x3 tensor or an (N, 3, 3) array, got shape {array.shape}")
    if finite:
        good = np.isfinite(array).all(axis=(-2, -1))
        if not np.all(good):
            bad = np.argwhere(~good)
            where = ", ".join(str(tuple(int(i) for i in row)) for row in bad[:5]) if bad.size else "()"
            raise ValueError(f"{name}: {int((~good).sum())} tensor(s) contain NaN or inf (index {where})")
    return array


def isotropic_part(tensors: np.ndarray) -> np.ndarray:
    """Isotropic part ``tr(T)/3`` of (..., 3, 3) tensors, shape (...)."""
    return np.trace(as_tensors(tensors), axis1=-2, axis2=-1) / 3.0


def antisymmetric_to_vector(tensors: np.ndarray) -> np.ndarray:
    """l = 1 components (v_y, v_z, v_x) of the antisymmetric part, shape (..., 3).

    ``v_k = 1/2 eps_kij A_ij`` with ``A = (T - T^T)/2``.
    """
    t = as_tensors(tensors)
    a = 0.5 * (t - np.swapaxes(t, -1, -2))
    vx, vy, vz = a[..., 1, 2], a[..., 2, 0], a[..., 0, 1]
    return np.stack([vy, vz, vx], axis=-1)


def vector_to_antisymmetric(components: np.ndarray) -> np.ndarray:
    """Inverse of :func:`antisymmetric_to_vector`: (..., 3) -> antisymmetric (..., 3, 3)."""
    v = np.asarray(components, dtype=float)
    if v.shape[-1] != 3:
        raise ValueError(f"expected (..., 3) l=1 components, got shape {v.shape}")
    vy, vz, vx = v[..., 0], v[..., 1], v[..., 2]
    out = np.zeros(v.shape[:-1] + (3, 3))
    out[..., 1, 2], out[..., 2, 1] = vx, -vx
    out[..., 2, 0], out[..., 0, 2] = vy, -vy
    out[..., 0, 1], out[..., 1, 0] = vz, -vz
    return out


def symmetric_traceless_to_l2(tensors: np.ndarray) -> np.ndarray:
    """Five l = 2 components ``s_m = <S, B_m>`` of the symmetric traceless part (..., 5)."""
    t = as_tensors(tensors)
    return np.einsum("...ij,mij->...m", t, L2_BASIS)


def l2_to_symmetric_traceless(components: np.ndarray) -> np.ndarray:
    """Symmetric traceless tensor ``S = sum_m s_m B_m`` from (..., 5) l = 2 components."""
    s = np.asarray(components, dtype=float)
    if s.shape[-1] != 5:
        raise ValueError(f"expected (..., 5) l=2 components, got shape {s.shape}")
    return np.einsum("...m,mij->...ij", s, L2_BASIS)


def cartesian_to_spherical(tensors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split (..., 3, 3) tensors into ``(iso, l1, l2)``: shapes (...), (..., 3), (..., 5)."""
    t = as_tensors(tensors)
    return isotropic_part(t), antisymmetric_to_vector(t), symmetric_traceless_to_l2(t)


def spherical_to_cartesian(
    iso: np.ndarray | float | None = None,
    l1: np.ndarray | None = None,
    l2: np.ndarray | None = None,
) -> np.ndarray:
    """Rebuild (..., 3, 3) tensors ``iso*1 + A(l1) + S(l2)``; missing parts count as zero."""
    parts = []
    if l2 is not None:
        parts.append(l2_to_symmetric_traceless(l2))
    if l1 is not None:
        parts.append(vector_to_antisymmetric(l1))
    if iso is not None:
        iso_arr = np.asarray(iso, dtype=float)
        parts.append(iso_arr[..., None, None] * np.eye(3))
    if not parts:
        raise ValueError("spherical_to_cartesian needs at least one of iso, l1, l2")
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total
