"""Principal frames, Euler angles (ZYZ, active) and quaternions of NMR tensors.

Conventions (see ``docs/conventions.md``):

* A principal frame is a proper rotation ``R`` (det R = +1) whose columns are the
  principal axes (x, y, z) in lab coordinates, so ``T_sym = R diag(Txx, Tyy, Tzz) R^T``.
* Euler angles are ZYZ, active: ``R = Rz(alpha) Ry(beta) Rz(gamma)`` (rotate the tensor
  from its principal frame first by gamma about z, then beta about y, then alpha about z,
  all about fixed lab axes). (alpha, beta) are the polar angles of the principal z axis.
* Eigenvector signs are arbitrary, so one tensor has four equivalent angle sets
  (alpha, beta, gamma), (alpha, beta, pi+gamma), (pi+alpha, pi-beta, pi-gamma),
  (pi+alpha, pi-beta, 2pi-gamma). The canonical representative is
  ``beta in [0, pi/2]``, ``gamma in [0, pi)``, ``alpha in [0, 2pi)``; ties are resolved by
  ``alpha in [0, pi)`` when beta = pi/2, and ``gamma = 0, alpha in [0, pi)`` when beta = 0.
* Quaternions are scalar-first ``(w, x, y, z)`` unit quaternions of the active rotation
  (``v' = q v q*``); q and -q are the same rotation and the canonical sign has w >= 0
  (when w = 0, the first non-zero component is positive). Axis flips give 4 rotations,
  i.e. 8 unit quaternions, for one tensor orientation (:func:`equivalent_quaternions`).
* Axial tensors (two principal values equal) have no unique frame: they are flagged by a
  boolean ``axial`` mask with the relative tolerance ``|Txx - Tyy| <= axial_tol*|Tzz - Tiso|``
  (``eta <= axial_tol``, default 1e-6); their angles are still finite and describe a valid
  frame, with gamma = 0 (and alpha = beta = 0 for an isotropic tensor).
"""
from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
from scipy.spatial.transform import Rotation

from ..core.spherical_tensors import as_tensors, isotropic_part, l2_to_symmetric_traceless, symmetric_traceless_to_l2

__all__ = [
    "DEFAULT_AXIAL_TOL",
    "ZERO_ANISOTROPY_TOL",
    "PrincipalFrame",
    "EulerAngles",
    "TensorOrientation",
    "symmetric_part",
    "principal_frame",
    "proper_rotation",
    "rotation_from_euler",
    "euler_from_rotation",
    "canonical_euler_angles",
    "equivalent_euler_angles",
    "quaternion_from_rotation",
    "rotation_from_quaternion",
    "quaternion_multiply",
    "canonical_quaternion",
    "equivalent_quaternions",
    "tensor_orientation",
    "scalar_if_0d",
    "is_isotropic",
]

#: Default relative tolerance for flagging axial tensors (eta <= 1e-6).
DEFAULT_AXIAL_TOL = 1e-6
_TWO_PI = 2.0 * np.pi
_ANGLE_EPS = 1e-12
_FRAME_CONVENTIONS = ("efg", "haeberlen", "mehring")


class PrincipalFrame(NamedTuple):
    """Principal values ``(..., 3)`` in the order of ``vectors`` columns ``(..., 3, 3)``."""

    values: np.ndarray
    vectors: np.ndarray


class EulerAngles(NamedTuple):
    """ZYZ active Euler angles in radians, each of shape (...)."""

    alpha: np.ndarray
    beta: np.ndarray
    gamma: np.ndarray


class TensorOrientation(NamedTuple):
    """Orientation of tensors' principal frames.

    ``alpha, beta, gamma`` canonical ZYZ angles (rad), ``quaternion`` (..., 4) canonical
    scalar-first, ``rotation`` (..., 3, 3) proper rotation R (columns = x, y, z axes),
    ``axial`` (...) True where the frame is not unique (axial or isotropic tensor).
    """

    alpha: np.ndarray
    beta: np.ndarray
    gamma: np.ndarray
    quaternion: np.ndarray
    rotation: np.ndarray
    axial: np.ndarray


# --------------------------------------------------------------------------- input checks
def scalar_if_0d(value: np.ndarray):
    """A NumPy scalar for a 0-d array, the array otherwise (one tensor in, scalars out)."""
    value = np.asarray(value)
    return value[()] if value.ndim == 0 else value


def symmetric_part(tensors: np.ndarray) -> np.ndarray:
    """Symmetric part ``(T + T^T)/2 = T(0) + T(2)`` of (..., 3, 3) tensors."""
    t = as_tensors(tensors, finite=True)
    iso = isotropic_part(t)
    return l2_to_symmetric_traceless(symmetric_traceless_to_l2(t)) + iso[..., None, None] * np.eye(3)


# --------------------------------------------------------------------------- frames
def proper_rotation(vectors: np.ndarray) -> np.ndarray:
    """Make orthonormal column frames proper (det = +1) by negating the third column where
    det = -1. Shape (..., 3, 3)."""
    v = np.array(vectors, dtype=float, copy=True)
    det = np.linalg.det(v)
    v[..., :, 2] *= np.where(det < 0, -1.0, 1.0)[..., None]
    return v


def principal_frame(tensors: np.ndarray, convention: str = "efg") -> PrincipalFrame:
    """Principal values and proper principal frames of the symmetric part of tensors.

    ``convention``:

    * ``"efg"``: (x, y, z) with ``|Txx - Tiso| <= |Tyy - Tiso| <= |Tzz - Tiso|``
      (for a traceless EFG, ``|Vxx| <= |Vyy| <= |Vzz|``);
    * ``"haeberlen"``: ``|Tzz - Tiso| >= |Txx - Tiso| >= |Tyy - Tiso|``;
    * ``"mehring"``: ascending ``T11 <= T22 <= T33``.

    Ties keep NumPy's ascending-eigenvalue order (stable sort). Returns values (..., 3)
    and vectors (..., 3, 3) with the axes as columns and det = +1.
    """
    if convention not in _FRAME_CONVENTIONS:
        raise ValueError(f"unknown principal-frame convention {convention!r}; use one of {_FRAME_CONVENTIONS}")
    sym = symmetric_part(tensors)
    values, vectors = np.linalg.eigh(sym)  # ascending
    if convention != "mehring":
        iso = values.mean(axis=-1, keepdims=True)
        order = np.argsort(np.abs(values - iso), axis=-1, kind="stable")
        if convention == "haeberlen":
            order = order[..., [1, 0, 2]]
        values = np.take_along_axis(values, order, axis=-1)
        vectors = np.take_along_axis(vectors, order[..., None, :], axis=-1)
    return PrincipalFrame(values, proper_rotation(vectors))


# --------------------------------------------------------------------------- Euler angles
def _flat_rotations(matrices: np.ndarray) -> tuple[Rotation, tuple[int, ...]]:
    """A scipy ``Rotation`` stack of (..., 3, 3) matrices and the leading shape."""
    return Rotation.from_matrix(matrices.reshape(-1, 3, 3)), matrices.shape[:-2]


def rotation_from_euler(alpha, beta, gamma) -> np.ndarray:
    """Active ZYZ rotation ``R = Rz(alpha) Ry(beta) Rz(gamma)`` (radians), shape (..., 3, 3)
    (scipy's intrinsic ``"ZYZ"`` sequence)."""
    a, b, g = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (alpha, beta, gamma)))
    if not (np.isfinite(a).all() and np.isfinite(b).all() and np.isfinite(g).all()):
        raise ValueError("Euler angles contain NaN or inf")
    angles = np.stack([a, b, g], -1)
    return Rotation.from_euler("ZYZ", angles.reshape(-1, 3)).as_matrix().reshape(a.shape + (3, 3))


def _as_rotations(rotations: np.ndarray, name: str = "rotation", atol: float = 1e-6) -> np.ndarray:
    r = as_tensors(rotations, name, finite=True)
    err = np.abs(r @ np.swapaxes(r, -1, -2) - np.eye(3)).max(axis=(-2, -1))
    det = np.linalg.det(r)
    if np.any(err > atol) or np.any(det < 0):
        raise ValueError(f"{name}: expected proper rotation matrices (R R^T = 1, det R = +1)")
    return r


def euler_from_rotation(rotations: np.ndarray) -> EulerAngles:
    """ZYZ active angles of proper rotations, ``beta in [0, pi]``, alpha, gamma in [0, 2pi).

    scipy's intrinsic ``"ZYZ"`` angles; in gimbal lock (sin beta < 1e-9) gamma = 0 and
    alpha carries the whole z rotation. Not canonicalised: see
    :func:`canonical_euler_angles`.
    """
    r = _as_rotations(rotations)
    stack, shape = _flat_rotations(r)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # gimbal lock: handled below
        angles = stack.as_euler("ZYZ").reshape(shape + (3,))
    alpha, beta, gamma = angles[..., 0], angles[..., 1], angles[..., 2]
    # gimbal lock (beta = 0 or pi): only alpha ± gamma is defined; put it all in alpha
    lock = np.hypot(r[..., 0, 2], r[..., 1, 2]) < 1e-9
    up = r[..., 2, 2] > 0
    lock_alpha = np.where(up, np.arctan2(r[..., 1, 0], r[..., 0, 0]), np.arctan2(-r[..., 1, 0], -r[..., 0, 0]))
    alpha = np.where(lock, lock_alpha, alpha)
    gamma = np.where(lock, 0.0, gamma)
    beta = np.where(lock, np.where(up, 0.0, np.pi), beta)
    return EulerAngles(scalar_if_0d(np.mod(alpha, _TWO_PI)), scalar_if_0d(beta), scalar_if_0d(np.mod(gamma, _TWO_PI)))


def equivalent_euler_angles(alpha, beta, gamma) -> np.ndarray:
    """The four equivalent angle sets of one tensor orientation, shape (..., 4, 3):
    (a, b, g), (a, b, pi+g), (pi+a, pi-b, pi-g), (pi+a, pi-b, 2pi-g), alpha and gamma
    wrapped into [0, 2pi)."""
    a, b, g = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (alpha, beta, gamma)))
    sets = [(a, b, g), (a, b, np.pi + g), (np.pi + a, np.pi - b, np.pi - g), (np.pi + a, np.pi - b, _TWO_PI - g)]
    out = np.stack([np.stack([np.mod(x, _TWO_PI), y, np.mod(z, _TWO_PI)], -1) for x, y, z in sets], -2)
    return out


def canonical_euler_angles(alpha, beta, gamma) -> EulerAngles:
    """Canonical member of the four-fold equivalence class of ZYZ angles (radians).

    Range: ``beta in [0, pi/2]``, ``gamma in [0, pi)``, ``alpha in [0, 2pi)``; at
    ``beta = pi/2`` also ``alpha in [0, pi)``; at ``beta = 0`` (gimbal lock)
    ``gamma = 0`` and ``alpha in [0, pi)``. Input angles may be any real numbers.
    """
    rot = rotation_from_euler(alpha, beta, gamma)
    a, b, g = (np.asarray(x, dtype=float) for x in euler_from_rotation(rot))
    # beta in [0, pi]: map beta > pi/2 with (pi+a, pi-b, pi-g)
    flip = b > 0.5 * np.pi + _ANGLE_EPS
    a = np.where(flip, a + np.pi, a)
    g = np.where(flip, np.pi - g, g)
    b = np.where(flip, np.pi - b, b)
    # gamma into [0, pi) with (a, b, pi+g)
    g = np.mod(g, _TWO_PI)
    g = np.where(g >= np.pi - _ANGLE_EPS, g - np.pi, g)
    # beta = pi/2: (pi+a, pi/2, pi-g) is also in range; pick alpha in [0, pi)
    a = np.mod(a, _TWO_PI)
    edge = np.abs(b - 0.5 * np.pi) <= _ANGLE_EPS
    swap = edge & (a >= np.pi - _ANGLE_EPS)
    a = np.where(swap, a - np.pi, a)
    g = np.where(swap, np.mod(np.pi - g, np.pi), g)
    b = np.where(edge, 0.5 * np.pi, b)
    # gimbal lock: only alpha + gamma matters, modulo pi
    lock = b <= 1e-9
    a = np.where(lock, np.mod(a + g, np.pi), a)
    g = np.where(lock, 0.0, g)
    b = np.where(lock, 0.0, b)
    # tidy values that rounded onto the open upper bounds
    a = np.where((a >= _TWO_PI - _ANGLE_EPS) | (np.abs(a) <= _ANGLE_EPS), 0.0, a)
    g = np.where(np.abs(g) <= _ANGLE_EPS, 0.0, g)
    return EulerAngles(scalar_if_0d(a), scalar_if_0d(b), scalar_if_0d(g))


# --------------------------------------------------------------------------- quaternions
def canonical_quaternion(quaternions: np.ndarray) -> np.ndarray:
    """Normalise (..., 4) scalar-first quaternions and choose the sign with w >= 0 (when
    |w| < 1e-12, the first component with |q_i| >= 1e-12 is made positive)."""
    q = np.asarray(quaternions, dtype=float)
    if q.shape[-1:] != (4,):
        raise ValueError(f"expected (..., 4) quaternions, got shape {q.shape}")
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    if np.any(~np.isfinite(q)) or np.any(norm == 0):
        raise ValueError("quaternions must be finite and non-zero")
    q = q / norm
    significant = np.abs(q) >= 1e-12
    first = np.argmax(significant, axis=-1)
    lead = np.take_along_axis(q, first[..., None], axis=-1)
    return q * np.where(lead < 0, -1.0, 1.0)


def quaternion_from_rotation(rotations: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z) of proper rotations (..., 3, 3), canonical sign (w >= 0)."""
    r = _as_rotations(rotations)
    stack, shape = _flat_rotations(r)
    return canonical_quaternion(stack.as_quat(scalar_first=True).reshape(shape + (4,)))


def rotation_from_quaternion(quaternions: np.ndarray) -> np.ndarray:
    """Active rotation matrix of (..., 4) scalar-first quaternions (normalised first)."""
    q = np.asarray(quaternions, dtype=float)
    if q.shape[-1:] != (4,):
        raise ValueError(f"expected (..., 4) quaternions, got shape {q.shape}")
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    if np.any(~np.isfinite(q)) or np.any(norm == 0):
        raise ValueError("quaternions must be finite and non-zero")
    matrices = Rotation.from_quat(q.reshape(-1, 4), scalar_first=True).as_matrix()
    return matrices.reshape(q.shape[:-1] + (3, 3))


def quaternion_multiply(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Hamilton product ``p q`` of scalar-first quaternions (broadcasting, (..., 4))."""
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    pw, px, py, pz = np.moveaxis(p, -1, 0)
    qw, qx, qy, qz = np.moveaxis(q, -1, 0)
    return np.stack([
        pw * qw - px * qx - py * qy - pz * qz,
        pw * qx + px * qw + py * qz - pz * qy,
        pw * qy - px * qz + py * qw + pz * qx,
        pw * qz + px * qy - py * qx + pz * qw,
    ], -1)


#: Quaternions of the identity and of pi rotations about the principal x, y, z axes.
_AXIS_FLIPS = np.eye(4)


def equivalent_quaternions(quaternions: np.ndarray) -> np.ndarray:
    """All 8 unit quaternions of one tensor orientation, shape (..., 8, 4).

    Rows 0-3 are ``q f`` with f = 1, i, j, k (the frame R composed with the pi rotations
    about its own x, y, z axes, i.e. ``R diag(1,1,1)``, ``R diag(1,-1,-1)``,
    ``R diag(-1,1,-1)``, ``R diag(-1,-1,1)``); rows 4-7 are their negatives.
    """
    q = np.asarray(quaternions, dtype=float)
    if q.shape[-1:] != (4,):
        raise ValueError(f"expected (..., 4) quaternions, got shape {q.shape}")
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    four = quaternion_multiply(q[..., None, :], _AXIS_FLIPS)
    return np.concatenate([four, -four], axis=-2)


# --------------------------------------------------------------------------- tensors
#: Relative size (to the tensor's Frobenius norm) below which an anisotropy counts as zero.
ZERO_ANISOTROPY_TOL = 1e-12


def is_isotropic(values: np.ndarray) -> np.ndarray:
    """Principal values (..., 3) ordered efg/haeberlen: ``|Tzz - Tiso| <= 1e-12 ||T||_F``."""
    iso = values.mean(axis=-1)
    norm = np.sqrt((values**2).sum(axis=-1))
    return np.abs(values[..., 2] - iso) <= ZERO_ANISOTROPY_TOL * norm


def _is_axial(values: np.ndarray, axial_tol: float) -> np.ndarray:
    """``|Txx - Tyy| <= axial_tol |Tzz - Tiso|`` or isotropic (values ordered efg/haeberlen)."""
    iso = values.mean(axis=-1)
    gap = np.abs(values[..., 0] - values[..., 1])
    return (gap <= axial_tol * np.abs(values[..., 2] - iso)) | is_isotropic(values)


def tensor_orientation(
    tensors: np.ndarray, convention: str = "efg", axial_tol: float = DEFAULT_AXIAL_TOL
) -> TensorOrientation:
    """Canonical orientation of tensors' principal frames (symmetric part).

    ``convention`` is ``"efg"`` (|Txx| <= |Tyy| <= |Tzz| about Tiso) or ``"haeberlen"``.
    ``axial`` is True where ``|Txx - Tyy| <= axial_tol * |Tzz - Tiso|`` (this includes
    isotropic tensors); there the returned frame has z along the unique axis and
    gamma = 0 (identity for isotropic tensors). No NaN is ever returned.
    """
    if convention not in ("efg", "haeberlen"):
        raise ValueError(f"tensor_orientation supports 'efg' and 'haeberlen', got {convention!r}")
    if not axial_tol >= 0:
        raise ValueError("axial_tol must be >= 0")
    values, rot = principal_frame(tensors, convention)
    isotropic = is_isotropic(values)
    axial = _is_axial(values, axial_tol)
    a, b, g = (np.asarray(x, dtype=float) for x in euler_from_rotation(rot))
    a, b, g = (np.asarray(x, dtype=float) for x in canonical_euler_angles(a, b, g))
    # axial tensors: unique axis z only, gamma := 0 (z into the upper hemisphere)
    z = rot[..., :, 2]
    z = np.where((z[..., 2] < 0)[..., None], -z, z)
    za = np.mod(np.arctan2(z[..., 1], z[..., 0]), _TWO_PI)
    zb = np.arccos(np.clip(z[..., 2], -1.0, 1.0))
    za, zb, zg = (np.asarray(x, dtype=float) for x in canonical_euler_angles(za, zb, 0.0 * za))
    a = np.where(axial, np.where(isotropic, 0.0, za), a)
    b = np.where(axial, np.where(isotropic, 0.0, zb), b)
    g = np.where(axial, 0.0, g)
    rotation = rotation_from_euler(a, b, g)
    quaternion = quaternion_from_rotation(rotation)
    return TensorOrientation(scalar_if_0d(a), scalar_if_0d(b), scalar_if_0d(g), quaternion, rotation, scalar_if_0d(axial))
