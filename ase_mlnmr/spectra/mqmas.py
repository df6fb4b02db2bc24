"""3QMAS spectra of half-integer quadrupolar nuclei (fast MAS, sheared), in the
Amoureux–Fernandez (AF) convention (Solid State NMR 10, 211 (1998);
``NMR_CONVENTIONS.md``)::

    δF1 = δiso − (10/17)·δQIS,     δiso = (17/27)·δF1 + (10/27)·δCoG(MAS)

δQIS the CT quadrupolar-induced shift (≤ 0) on the ppm axis of ν_ref
(:func:`~ase_mlnmr.spectra.central_transition.quadrupolar_shift_ppm`). In this convention
F1 is in ppm of the single-quantum reference frequency with chemical shifts on the
diagonal (slope 1) and the same δF1 relation for every spin; after shearing, each site is
a line along F2 (its MAS CT powder pattern) at F1 = δF1.

Intensities assume ideal (orientation- and CQ-independent) excitation and conversion of
the triple-quantum coherence: real 3QMAS under-represents large-CQ sites.

The 2D spectrum on a grid: with F1 and F2 axes of the same step on one lattice, a weight
V[r, g] of node g at F1 row r carries the F2 line ``I_g(F2 − F1_r + c_g)``
(c_g = −(10/17)δQIS_g), so in sheared coordinates the spectrum is the matrix product
V @ Ĩ of the weights with the shifted lineshape matrix, then unsheared row by row.
"""
from __future__ import annotations

import numpy as np

from .axis import PPMAxis, Spectrometer
from .central_transition import ct_bin_probabilities, ct_prefactor_ppm, quadrupolar_shift_ppm
from .csa import isotropic_spectrum
from .grid import LineshapeGrid, NodeWeights
from .sites import SiteLike, as_sites

__all__ = ["AF_QIS_FACTOR", "af_isotropic_shift", "mqmas_projection_per_site", "mqmas_projection_grid",
           "mqmas_2d_per_site", "mqmas_2d_grid", "IDEAL_EXCITATION_NOTE"]

#: δF1 = δiso − AF_QIS_FACTOR·δQIS (Amoureux–Fernandez)
AF_QIS_FACTOR = 10.0 / 17.0
IDEAL_EXCITATION_NOTE = "3QMAS intensities assume ideal excitation and conversion"


def af_isotropic_shift(delta_iso_ppm, cq_MHz, eta_q, spectrometer: Spectrometer) -> np.ndarray:
    """Position on the AF isotropic axis: δF1 = δiso − (10/17)δQIS (ppm)."""
    return np.asarray(delta_iso_ppm, dtype=float) - AF_QIS_FACTOR * quadrupolar_shift_ppm(cq_MHz, eta_q, spectrometer)


def _node_qis(grid: LineshapeGrid) -> np.ndarray:
    cq, eta = np.meshgrid(grid.cq_nodes, grid.eta_nodes, indexing="ij")
    return quadrupolar_shift_ppm(cq.ravel(), eta.ravel(), grid.spectrometer)


def mqmas_projection_per_site(sites: SiteLike, spectrometer: Spectrometer, axis_f1: PPMAxis) -> np.ndarray:
    """Isotropic (F1) projection: a line of each site's weight at δF1 (per ppm)."""
    sites = as_sites(sites)
    sites.require_quadrupolar()
    position = af_isotropic_shift(sites.delta_iso_ppm, sites.cq_MHz, sites.eta_q, spectrometer)
    return isotropic_spectrum(position, sites.weight, axis_f1)


def mqmas_projection_grid(weights: NodeWeights, grid: LineshapeGrid, axis_f1: PPMAxis) -> np.ndarray:
    """Isotropic projection from grid-node weights (shift index on ``axis_f1``'s lattice):
    each weight moves by −(10/17)δQIS of its node (grid route)."""
    shift = weights.shift_index - AF_QIS_FACTOR * _node_qis(grid)[weights.nodes] / axis_f1.step_ppm
    return isotropic_spectrum(axis_f1.start_ppm + shift * axis_f1.step_ppm, weights.weight, axis_f1)


def _check_lattice(axis_f2: PPMAxis, axis_f1: PPMAxis) -> int:
    if abs(axis_f1.step_ppm - axis_f2.step_ppm) > 1e-9 * axis_f2.step_ppm:
        raise ValueError("the F1 and F2 axes of a sheared 3QMAS spectrum must have the same ppm step")
    lag = (axis_f2.start_ppm - axis_f1.start_ppm) / axis_f2.step_ppm
    if abs(lag - round(lag)) > 1e-6:
        raise ValueError("the F1 axis must lie on the F2 axis' lattice (start differs by a whole number of steps)")
    return int(round(lag))


def mqmas_2d_per_site(sites: SiteLike, spectrometer: Spectrometer, axis_f2: PPMAxis, axis_f1: PPMAxis,
                      n_alpha: int | None = None, progress: bool = False) -> np.ndarray:
    """Sheared 3QMAS spectrum (n_F1, n_F2), per-site route: each site's exact MAS CT line
    along F2 placed at F1 = δF1 (split between the two nearest rows)."""
    sites = as_sites(sites)
    sites.require_quadrupolar()
    position = af_isotropic_shift(sites.delta_iso_ppm, sites.cq_MHz, sites.eta_q, spectrometer)
    p = ct_prefactor_ppm(sites.abs_cq_MHz, spectrometer)
    out = np.zeros((axis_f1.count, axis_f2.count))
    edges = axis_f2.edges
    t = axis_f1.index_of(position)
    iterator = range(len(sites))
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="3QMAS sites", unit="site")
    for i in iterator:
        line = ct_bin_probabilities(sites.delta_iso_ppm[i], p[i], sites.eta_q[i], edges, "mas", n_alpha)
        r0 = int(np.floor(t[i]))
        f = t[i] - r0
        for r, v in ((r0, 1.0 - f), (r0 + 1, f)):
            if 0 <= r < axis_f1.count:
                out[r] += sites.weight[i] * v * line
    return out / (axis_f1.step_ppm * axis_f2.step_ppm)


def mqmas_2d_grid(weights: NodeWeights, grid: LineshapeGrid, axis_f2: PPMAxis, axis_f1: PPMAxis,
                  gaussian_sd_ppm: float = 0.0) -> np.ndarray:
    """Sheared 3QMAS spectrum (n_F1, n_F2) from grid-node weights (shift index on the F2
    lattice): matrix product of the F1-row weights with the shifted lineshapes, unsheared.
    ``gaussian_sd_ppm`` (KDE conditional width along δ) smears the weights along F1 and
    the lines along F2 together, i.e. along the diagonal."""
    if grid.mode != "mas":
        raise ValueError("3QMAS needs a MAS lineshape grid")
    if abs(grid.step_ppm - axis_f2.step_ppm) > 1e-9 * axis_f2.step_ppm:
        raise ValueError("the grid step must equal the F2 axis step")
    lag = _check_lattice(axis_f2, axis_f1)
    step = axis_f2.step_ppm
    c = -AF_QIS_FACTOR * _node_qis(grid) / step  # F1 − δ in steps, per node (≥ 0)
    nodes, shift, w = weights.nodes, weights.shift_index, weights.weight
    if gaussian_sd_ppm > 0:  # sample the conditional Gaussian along the diagonal (7-point rule)
        z, pw = np.polynomial.hermite_e.hermegauss(7)
        pw = pw / pw.sum()
        nodes = np.repeat(nodes, 7)
        shift = (shift[:, None] + z[None, :] * gaussian_sd_ppm / step).ravel()
        w = (w[:, None] * pw[None, :]).ravel()
    # F1 row (axis_f1 index) of each weight: δ index on F2 lattice + lag + c_g
    row = shift + lag + c[nodes]
    r0 = np.floor(row).astype(np.int64)
    f = row - r0
    active, inverse = np.unique(nodes, return_inverse=True)
    n_f1 = axis_f1.count
    v = np.zeros((n_f1, len(active)))
    for r, vv in ((r0, w * (1.0 - f)), (r0 + 1, w * f)):
        ok = (r >= 0) & (r < n_f1)
        np.add.at(v, (r[ok], inverse[ok]), vv[ok])
    # shifted lineshapes: offset u (F2 − F1_r in steps) holds I_g((u + c_g)·step)
    shapes = grid.node_shapes(active)
    u_lo = grid.offset_low - int(np.ceil(c[active].max())) - 1
    u_hi = grid.offset_low + grid.n_offsets
    u = np.arange(u_lo, u_hi + 1)
    m_index = np.arange(grid.n_offsets) + grid.offset_low
    shifted = np.empty((len(active), len(u)))
    for k, g in enumerate(active):
        shifted[k] = np.interp(u + c[g], m_index, shapes[k], left=0.0, right=0.0)
    sheared = v @ shifted  # (n_f1, n_u)
    out = np.zeros((n_f1, axis_f2.count))
    j = np.arange(axis_f2.count)
    for r in range(n_f1):
        # F2_j − F1_r in steps = j + lag − r... F2 index j ↔ F1 index j + lag
        idx = j + lag - r - u_lo
        ok = (idx >= 0) & (idx < len(u))
        out[r, ok] = sheared[r, idx[ok]]
    return out / (axis_f1.step_ppm * step)
