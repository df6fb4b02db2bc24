"""Explicit rotation matrices for the NMR-convention tests (independent of the package)."""
from __future__ import annotations

import numpy as np


def rz(a):
    """Active rotation by angle a (rad) about z."""
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def ry(b):
    """Active rotation by angle b (rad) about y."""
    c, s = np.cos(b), np.sin(b)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rotated(diag, alpha, beta, gamma):
    """R diag(...) R^T with R = Rz(α) Ry(β) Rz(γ), angles in degrees."""
    r = rz(np.radians(alpha)) @ ry(np.radians(beta)) @ rz(np.radians(gamma))
    return r @ np.diag(diag) @ r.T


def random_rotations(n, seed):
    """n uniform random proper rotations, shape (n, 3, 3)."""
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.normal(size=(n, 3, 3)))
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    return q * np.sign(np.linalg.det(q))[:, None, None]
