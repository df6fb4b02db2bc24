"""Kernel density estimate of the NMR parameter distribution p(δiso, |CQ|, η)
(Charpentier 2025, eq. 6) with a full bandwidth (covariance) matrix H::

    p(x) = Σ_i w_i K_H(x − x_i) / Σ_i w_i,   K_H(y) = exp(−½ yᵀH⁻¹y) / ((2π)^{3/2} √det H)

x = (δiso ppm, |CQ| MHz, η). Default H: Scott's rule on the (weighted) sample covariance
Σ, ``H = n^{−2/(d+4)} Σ`` with d = 3 (``H = factor² Σ`` for a scalar ``bandwidth=factor``;
a 3×3 matrix is used as H itself). The sign of CQ is dropped (|CQ|): central-transition
lineshapes depend on CQ² only.

Boundaries: the support is |CQ| ≥ 0 and 0 ≤ η ≤ 1. Mass that the kernels put outside is
reflected back (reflection method): each sample also contributes its mirror images at
|CQ| = 0 (CQ → −CQ), η = 0 (η → −η) and η = 1 (η → 2 − η) and their combinations, each with
the mirrored covariance R H R (R flips the sign of the reflected coordinate), so that
p(x) = Σ_i Σ_R K_H(Rx − x_i) on the support, which integrates to 1 there.

On the lineshape grid the KDE is evaluated exactly at the (|CQ|, η) nodes (trapezoid cell
weights), and exactly along δ: K_H factorises into the (|CQ|, η) marginal and a Gaussian
in δ of mean δ_i + H_δc H_cc⁻¹ (x_g − x_i) and variance H_δδ − H_δc H_cc⁻¹ H_cδ.
"""
from __future__ import annotations

from typing import Union

import numpy as np

from .axis import PPMAxis
from .grid import LineshapeGrid, NodeWeights
from .sites import SiteError, Sites

__all__ = ["scott_bandwidth", "bandwidth_matrix", "kde_evaluate", "kde_node_weights", "sample_matrix"]

BandwidthLike = Union[str, float, np.ndarray, None]

#: (CQ sign, η map) of the mirror images: η → η, −η, 2 − η
_IMAGES = [(sc, k) for sc in (1.0, -1.0) for k in (0, 1, 2)]


def sample_matrix(sites: Sites) -> np.ndarray:
    """(n, 3) samples x_i = (δiso ppm, |CQ| MHz, η)."""
    return np.column_stack([sites.delta_iso_ppm, sites.abs_cq_MHz, sites.eta_q])


def _weighted_covariance(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float]:
    w = w / w.sum()
    mean = w @ x
    d = x - mean
    n_eff = 1.0 / np.sum(w**2)
    cov = (d * w[:, None]).T @ d / (1.0 - np.sum(w**2)) if n_eff > 1 else np.zeros((x.shape[1],) * 2)
    return cov, n_eff


def scott_bandwidth(samples: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Scott's rule H = n^{−2/(d+4)} Σ (Σ the sample covariance, n the effective sample
    size (Σw)²/Σw², d the dimension)."""
    x = np.asarray(samples, dtype=float)
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=float)
    cov, n_eff = _weighted_covariance(x, w)
    return cov * n_eff ** (-2.0 / (x.shape[1] + 4))


def bandwidth_matrix(samples: np.ndarray, bandwidth: BandwidthLike = "scott",
                     weights: np.ndarray | None = None) -> np.ndarray:
    """H from ``bandwidth``: "scott" (default), a positive factor f (H = f²Σ), or a 3×3
    symmetric positive-definite matrix. Raises when H is singular (e.g. all sites share
    one value of a parameter: then give H explicitly)."""
    x = np.asarray(samples, dtype=float)
    d = x.shape[1]
    if bandwidth is None or (isinstance(bandwidth, str) and bandwidth == "scott"):
        h = scott_bandwidth(x, weights)
    elif isinstance(bandwidth, str):
        raise ValueError(f"bandwidth must be 'scott', a positive factor or a {d}x{d} matrix, got {bandwidth!r}")
    elif np.ndim(bandwidth) == 0:
        factor = float(bandwidth)
        if not (np.isfinite(factor) and factor > 0):
            raise ValueError(f"bandwidth factor must be positive, got {bandwidth!r}")
        w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=float)
        h = _weighted_covariance(x, w)[0] * factor**2
    else:
        h = np.asarray(bandwidth, dtype=float)
        if h.shape != (d, d) or not np.allclose(h, h.T):
            raise ValueError(f"bandwidth matrix must be symmetric {d}x{d}, got shape {h.shape}")
    if not np.all(np.isfinite(h)) or np.any(np.linalg.eigvalsh(h) <= 1e-12 * max(np.trace(h), 1e-300)):
        raise SiteError("the KDE bandwidth matrix is singular (too few sites, or a parameter is the same for all "
                        "sites): pass bandwidth as an explicit positive-definite 3x3 matrix, or use bandwidth=0 "
                        "(per-site weights)")
    return h


def _reflect(x: np.ndarray, sign_cq: float, eta_map: int) -> np.ndarray:
    out = np.array(x, dtype=float, copy=True)
    out[..., 1] *= sign_cq
    if eta_map == 1:
        out[..., 2] = -out[..., 2]
    elif eta_map == 2:
        out[..., 2] = 2.0 - out[..., 2]
    return out


def kde_evaluate(points: np.ndarray, samples: np.ndarray, bandwidth: np.ndarray, weights: np.ndarray | None = None,
                 reflect: bool = True, chunk: int = 2048) -> np.ndarray:
    """p(points) (m,) of the KDE of samples (n, 3) with bandwidth matrix H (3, 3); with
    ``reflect`` the mirror images at |CQ| = 0, η = 0 and η = 1 are added (module
    docstring). Direct O(n·m) sum: for tests and small problems."""
    pts = np.atleast_2d(np.asarray(points, dtype=float))
    x = np.asarray(samples, dtype=float)
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=float)
    w = w / w.sum()
    h_inv = np.linalg.inv(bandwidth)
    norm = 1.0 / np.sqrt((2.0 * np.pi) ** x.shape[1] * np.linalg.det(bandwidth))
    images = _IMAGES if reflect else [(1.0, 0)]
    out = np.zeros(len(pts))
    for start in range(0, len(pts), chunk):
        p = pts[start:start + chunk]
        for sign_cq, eta_map in images:
            d = _reflect(p, sign_cq, eta_map)[:, None, :] - x[None, :, :]
            q = np.einsum("mni,ij,mnj->mn", d, h_inv, d)
            out[start:start + chunk] += norm * np.exp(-0.5 * q) @ w
    return out


def kde_node_weights(sites: Sites, grid: LineshapeGrid, axis: PPMAxis, bandwidth: BandwidthLike = "scott",
                     cutoff: float = 4.0, chunk: int = 4096,
                     progress: bool = False) -> tuple[NodeWeights, float, np.ndarray]:
    """Weights of the grid nodes from the KDE (module docstring).

    Returns (weights, conditional standard deviation along δ in ppm, H). Each site's kernel
    is evaluated at the (|CQ|, η) nodes within ``cutoff`` standard deviations (in each
    coordinate), times the trapezoid cell area; its δ part is deposited at the conditional
    mean and later broadened by the conditional standard deviation (grid.spectrum).
    """
    x = sample_matrix(sites)
    w = sites.weight / sites.weight.sum()
    h = bandwidth_matrix(x, bandwidth, sites.weight)
    grid.check_sites(sites)
    if grid.cq_relative_step > 0:
        raise ValueError("the KDE needs a lineshape grid with uniform CQ nodes (cq_relative_step=0); this grid's "
                         "nodes are adapted to the lineshape (the per-site grid route's default)")
    cond_var = h[0, 0] - h[0, 1:] @ np.linalg.solve(h[1:, 1:], h[1:, 0])
    sd_cq, sd_eta = np.sqrt(h[1, 1]), np.sqrt(h[2, 2])
    if sd_cq < 0.5 * grid.cq_step or sd_eta < 0.5 * grid.eta_step:
        raise SiteError(f"KDE bandwidth (sd |CQ| {sd_cq:.3g} MHz, sd eta {sd_eta:.3g}) is narrower than half the "
                        f"grid spacing ({grid.cq_step:g} MHz, {grid.eta_step:g}): refine the grid, widen the "
                        "bandwidth, or use bandwidth=0 (per-site weights)")
    if sites.abs_cq_MHz.max() + cutoff * sd_cq > grid.cq_nodes[-1] + 1e-12:
        raise SiteError(f"the grid (|CQ| ≤ {grid.cq_nodes[-1]:.4g} MHz) does not hold the KDE's tail: build it with "
                        f"cq_max_MHz ≥ {sites.abs_cq_MHz.max() + cutoff * sd_cq:.4g}")
    n_cq, n_eta = len(grid.cq_nodes), len(grid.eta_nodes)
    area = np.full((n_cq, n_eta), grid.cq_step * grid.eta_step)
    area[0, :] *= 0.5
    area[:, 0] *= 0.5
    area[:, -1] *= 0.5
    half_c = int(np.ceil(cutoff * sd_cq / grid.cq_step))
    half_e = int(np.ceil(cutoff * sd_eta / grid.eta_step))
    oc, oe = np.meshgrid(np.arange(-half_c, half_c + 1), np.arange(-half_e, half_e + 1), indexing="ij")
    oc, oe = oc.ravel(), oe.ravel()
    out_nodes, out_shift, out_w = [], [], []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(_IMAGES) * len(x), desc="KDE weights", unit="site")
    for sign_cq, eta_map in _IMAGES:
        r = np.diag([1.0, sign_cq, -1.0 if eta_map else 1.0])
        hr = r @ h @ r
        hcc_inv = np.linalg.inv(hr[1:, 1:])
        gain = hr[0, 1:] @ hcc_inv  # conditional-mean slope
        norm = 1.0 / (2.0 * np.pi * np.sqrt(np.linalg.det(hr[1:, 1:])))
        xr = _reflect(x, sign_cq, eta_map)
        near = ((xr[:, 1] > -cutoff * sd_cq) & (xr[:, 2] > -cutoff * sd_eta) & (xr[:, 2] < 1 + cutoff * sd_eta))
        idx = np.flatnonzero(near)
        if bar is not None:
            bar.update(len(x) - len(idx))
        for start in range(0, len(idx), chunk):
            sel = idx[start:start + chunk]
            base_c = np.rint(xr[sel, 1] / grid.cq_step).astype(np.int64)
            base_e = np.rint(xr[sel, 2] / grid.eta_step).astype(np.int64)
            ci = base_c[:, None] + oc[None, :]
            ei = base_e[:, None] + oe[None, :]
            inside = (ci >= 0) & (ci < n_cq) & (ei >= 0) & (ei < n_eta)
            dc = np.where(inside, ci, 0) * grid.cq_step - xr[sel, 1][:, None]
            de = np.where(inside, ei, 0) * grid.eta_step - xr[sel, 2][:, None]
            q = hcc_inv[0, 0] * dc * dc + 2.0 * hcc_inv[0, 1] * dc * de + hcc_inv[1, 1] * de * de
            keep = inside & (q < cutoff**2)
            rows, cols = np.nonzero(keep)
            cc, ee = ci[rows, cols], ei[rows, cols]
            value = norm * np.exp(-0.5 * q[rows, cols]) * area[cc, ee] * w[sel][rows]
            mean = x[sel, 0][rows] + gain[0] * dc[rows, cols] + gain[1] * de[rows, cols]
            out_nodes.append(cc * n_eta + ee)
            out_shift.append(axis.index_of(mean))
            out_w.append(value)
            if bar is not None:
                bar.update(len(sel))
    if bar is not None:
        bar.close()
    weights = NodeWeights(np.concatenate(out_nodes), np.concatenate(out_shift), np.concatenate(out_w))
    return weights, float(np.sqrt(max(cond_var, 0.0))), h
