"""Precomputed central-transition lineshapes on a (|CQ|, η) grid, and the ensemble
spectrum as a sum over grid nodes of weights × shifted lineshapes (Charpentier 2025:
with I(ν; δiso, CQ, η) ≈ I(ν − δiso; 0, CQ, η) only a 2D (CQ, η) grid is needed).

Two stages:

1. :class:`NormalisedCTTable` — for each η node the cumulative distribution
   G_η(y) = Prob(A cos⁴β + B cos²β + C ≤ y) of the dimensionless CT frequency over a
   powder (exact in β, ``n_alpha`` midpoint nodes in α; see
   :mod:`~ase_mlnmr.spectra.central_transition`), on ``n_y`` points. It depends on
   nothing else (not on the isotope, field, CQ or axis), so it is computed once and cached
   on disk (``~/.cache/ase_mlnmr/spectra`` or ``$ASE_MLNMR_CACHE``) keyed by its settings.
2. :class:`LineshapeGrid` — for a spectrometer, a ppm step and CQ nodes, the bin integrals
   of every node's line centred at δiso = 0: ``Prob(ν ≤ e) = 1 − G_η(e/P(CQ))`` (P < 0,
   :func:`~ase_mlnmr.spectra.central_transition.ct_prefactor_ppm`), differenced over bin
   edges. Cheap (interpolation).

An ensemble spectrum is ``S(ν_j) = Σ_g Σ_k W[g, k] I_g(ν_j − δ_k)``: W are the weights of
the grid nodes g at shifts δ_k (on the axis lattice), from per-site linear binning
(bandwidth 0) or from the KDE (:mod:`~ase_mlnmr.spectra.kde`). The sum over k is a
convolution, evaluated by FFT node by node; the sum over g is a product of the weight
matrix with the lineshape matrix in the Fourier domain.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import fft as sfft

from .axis import PPMAxis, Spectrometer
from .central_transition import (_check_mode, _extent, _measure_below, alpha_nodes, ct_coefficients,
                                 ct_prefactor_ppm, quadrupolar_shift_ppm)
from .sites import SiteError, Sites

__all__ = ["NormalisedCTTable", "LineshapeGrid", "NodeWeights", "cache_dir", "site_node_weights"]

_TABLE_VERSION = 1


def cache_dir() -> Path:
    """Folder of cached tables: ``$ASE_MLNMR_CACHE`` or ``~/.cache/ase_mlnmr/spectra``."""
    root = os.environ.get("ASE_MLNMR_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "ase_mlnmr" / "spectra"


class NormalisedCTTable:
    """CDF tables G_η(y) of the dimensionless CT frequency g = A cos⁴β + B cos²β + C.

    mode: "mas" or "static"; eta_step: spacing of the η nodes on [0, 1]; n_alpha: α nodes of
    the powder average; n_y: points of each table (uniform in y over the η node's range).
    ``cache``: True (default folder), False, or a folder.
    """

    def __init__(self, mode: str = "mas", eta_step: float = 0.05, n_alpha: int = 1024, n_y: int = 16384,
                 cache: bool | str | os.PathLike = True, progress: bool = False) -> None:
        self.mode = _check_mode(mode)
        n_eta = int(round(1.0 / eta_step)) + 1
        if n_eta < 2 or abs((n_eta - 1) * eta_step - 1.0) > 1e-9:
            raise ValueError(f"eta_step must divide [0, 1] evenly (e.g. 0.05, 0.1), got {eta_step}")
        self.eta_nodes = np.linspace(0.0, 1.0, n_eta)
        self.n_alpha, self.n_y = int(n_alpha), int(n_y)
        self.settings = {"version": _TABLE_VERSION, "mode": mode, "n_eta": n_eta, "n_alpha": self.n_alpha,
                         "n_y": self.n_y}
        key = hashlib.sha256(json.dumps(self.settings, sort_keys=True).encode()).hexdigest()[:16]
        path = None
        if cache:
            folder = cache_dir() if cache is True else Path(cache)
            path = folder / f"ct_table_{mode}_{key}.npz"
        if path is not None and path.exists():
            data = np.load(path)
            self.y_low, self.y_high, self.cdf = data["y_low"], data["y_high"], data["cdf"]
        else:
            self._compute(progress)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
                np.savez(tmp, y_low=self.y_low, y_high=self.y_high, cdf=self.cdf,
                         settings=json.dumps(self.settings))
                os.replace(tmp, path)
        self.path = path

    def _compute(self, progress: bool) -> None:
        cos2a = alpha_nodes(self.n_alpha)[:, None]
        n_eta = len(self.eta_nodes)
        self.y_low, self.y_high = np.empty(n_eta), np.empty(n_eta)
        self.cdf = np.empty((n_eta, self.n_y))
        iterator = enumerate(self.eta_nodes)
        if progress:
            from tqdm import tqdm

            iterator = tqdm(list(iterator), desc=f"CT table ({self.mode})", unit="eta")
        for i, eta in iterator:
            a2, a1, a0 = ct_coefficients(eta, cos2a, self.mode)
            low, high = _extent(a2, a1, a0)
            y = np.linspace(low, high, self.n_y)
            total = np.zeros(self.n_y)
            for start in range(0, self.n_alpha, 32):
                sl = slice(start, start + 32)
                total += _measure_below(a2[sl], a1[sl], a0[sl], y[None, :]).sum(axis=0)
            cdf = total / self.n_alpha
            cdf[0], cdf[-1] = 0.0, 1.0
            self.y_low[i], self.y_high[i], self.cdf[i] = low, high, np.maximum.accumulate(cdf)

    def cdf_at(self, eta_index: int, y: np.ndarray) -> np.ndarray:
        """G_η(y) at η node ``eta_index`` (linear interpolation; 0 below, 1 above)."""
        grid = np.linspace(self.y_low[eta_index], self.y_high[eta_index], self.n_y)
        return np.interp(y, grid, self.cdf[eta_index], left=0.0, right=1.0)


def _adapted_cq_nodes(table: NormalisedCTTable, spectrometer: Spectrometer, step_ppm: float, cq_max_MHz: float,
                      relative_step: float) -> np.ndarray:
    """CQ nodes (MHz) adapted to the lineshape: 0, c_g/4, c_g/2, 3c_g/4, then c_g·(1 + r)^k up
    to the first node ≥ cq_max, with c_g the |CQ| at which the widest line of the table
    (width |P(CQ)|·(y_high − y_low), P ∝ CQ²) spans 4 bins of ``step_ppm``. The blending error
    of two neighbouring lines is set by their relative width difference ≈ 2r, not by the
    absolute CQ step; lines narrower than 4 bins differ from their neighbours by less than a bin."""
    width_per_mhz2 = abs(float(ct_prefactor_ppm(1.0, spectrometer))) * float(np.max(table.y_high - table.y_low))
    c_g = float(np.sqrt(4.0 * step_ppm / width_per_mhz2))
    if c_g >= cq_max_MHz:
        return np.linspace(0.0, cq_max_MHz, 5)
    n_geo = int(np.ceil(np.log(cq_max_MHz / c_g) / np.log1p(relative_step) - 1e-9)) + 1
    return np.concatenate([c_g * np.arange(4) / 4.0, c_g * (1.0 + relative_step) ** np.arange(n_geo)])


@dataclass
class NodeWeights:
    """Weights of grid nodes at shifts on the axis lattice: ``nodes`` (m,) flat node
    indices (cq_index·n_eta + eta_index), ``shift_index`` (m,) fractional lattice index of
    the shift δ (δ = start + index·step), ``weight`` (m,). Deposited by linear interpolation."""

    nodes: np.ndarray
    shift_index: np.ndarray
    weight: np.ndarray


class LineshapeGrid:
    """Lineshapes of CT lines at δiso = 0 for every (|CQ|, η) node, on a ppm lattice.

    table: a :class:`NormalisedCTTable` (fixes mode and η nodes); spectrometer; step_ppm:
    the lattice step (the spectrum axis step); cq_max_MHz, cq_step_MHz: CQ nodes
    0, step, ..., ≥ cq_max (``cq_step`` is NaN on an adapted grid). ``cq_relative_step`` r > 0
    instead adapts the CQ nodes to the lineshape (:func:`_adapted_cq_nodes`): geometric,
    c_{k+1} = (1 + r)·c_k, so that neighbouring lines differ in width by the same ≈ 2r
    everywhere (blending two lines smears each singularity over ≈ 2r of the line width).
    :meth:`node_shapes` gives the bin fractions at offsets ``(offset_low + m)·step`` ppm,
    m < n_offsets; each CQ row stores only the offsets its lines reach
    (``row_first``..``row_last``).
    """

    def __init__(self, table: NormalisedCTTable, spectrometer: Spectrometer, step_ppm: float, cq_max_MHz: float,
                 cq_step_MHz: float = 0.05, cq_relative_step: float = 0.0) -> None:
        if not (cq_step_MHz > 0 and cq_max_MHz > 0):
            raise ValueError(f"cq_step_MHz and cq_max_MHz must be positive, got {cq_step_MHz}, {cq_max_MHz}")
        if not (0.0 <= cq_relative_step < 1.0):
            raise ValueError(f"cq_relative_step must lie in [0, 1), got {cq_relative_step}")
        Sites(spectrometer.isotope, [0.0], [1.0]).require_quadrupolar()
        self.table, self.spectrometer, self.mode = table, spectrometer, table.mode
        self.step_ppm = float(step_ppm)
        self.cq_relative_step = float(cq_relative_step)
        if cq_relative_step > 0:
            self.cq_nodes = _adapted_cq_nodes(table, spectrometer, self.step_ppm, cq_max_MHz, cq_relative_step)
        else:
            n_cq = int(np.ceil(cq_max_MHz / cq_step_MHz - 1e-9)) + 1
            self.cq_nodes = np.arange(n_cq) * cq_step_MHz
        self.cq_step = float(cq_step_MHz) if cq_relative_step == 0 else float("nan")
        self.eta_nodes = table.eta_nodes
        self.eta_step = float(self.eta_nodes[1] - self.eta_nodes[0])
        p = ct_prefactor_ppm(self.cq_nodes, spectrometer)  # (n_cq,) ≤ 0
        # offsets covering every node's line: ν = P·g, g in [y_low, y_high]
        lo = min(0.0, float((p[:, None] * table.y_high[None, :]).min()))
        hi = max(0.0, float((p[:, None] * table.y_low[None, :]).max()))
        self.offset_low = int(np.floor(lo / self.step_ppm - 0.5)) - 1
        offset_high = int(np.ceil(hi / self.step_ppm + 0.5)) + 1
        n_off = offset_high - self.offset_low + 1
        edges = (self.offset_low + np.arange(n_off + 1) - 0.5) * self.step_ppm
        # each CQ row keeps only the offsets its lines reach (ragged storage)
        row_lo = np.minimum(p * table.y_high.max(), 0.0)
        row_hi = np.maximum(p * table.y_low.min(), 0.0)
        self.row_first = np.clip(np.floor(row_lo / self.step_ppm - 0.5).astype(int) - 1 - self.offset_low, 0, n_off - 1)
        self.row_last = np.clip(np.ceil(row_hi / self.step_ppm + 0.5).astype(int) + 1 - self.offset_low, 0, n_off - 1)
        zero = int(-self.offset_low)
        self._rows: list[np.ndarray] = []
        for i, pi in enumerate(p):
            first, last = int(self.row_first[i]), int(self.row_last[i])
            row = np.zeros((len(self.eta_nodes), last - first + 1))
            if pi == 0.0:
                row[:, zero - first] = 1.0  # CQ = 0: a delta line at 0 ppm
            else:
                sub = edges[first:last + 2] / pi
                for j in range(len(self.eta_nodes)):
                    row[j] = np.diff(1.0 - table.cdf_at(j, sub))
            self._rows.append(row)
        self.n_offsets = n_off
        self._fft_cache: dict = {}

    @property
    def n_nodes(self) -> int:
        return len(self.cq_nodes) * len(self.eta_nodes)

    def node_shapes(self, nodes: np.ndarray, first: int = 0, last: int | None = None) -> np.ndarray:
        """Lineshapes (len(nodes), last − first + 1) of flat node indices on offset indices
        first..last (bin fractions; offset index m is (offset_low + m)·step ppm)."""
        last = self.n_offsets - 1 if last is None else last
        n_eta = len(self.eta_nodes)
        out = np.zeros((len(nodes), last - first + 1))
        for k, node in enumerate(np.asarray(nodes)):
            i, j = divmod(int(node), n_eta)
            lo, hi = max(first, int(self.row_first[i])), min(last, int(self.row_last[i]))
            if hi >= lo:
                out[k, lo - first:hi - first + 1] = self._rows[i][j, lo - self.row_first[i]:hi - self.row_first[i] + 1]
        return out

    def check_sites(self, sites: Sites) -> None:
        """Raise a :class:`SiteError` when sites fall outside the grid's CQ range."""
        if sites.isotope.name != self.spectrometer.isotope.name:
            raise SiteError(f"sites are {sites.isotope.name}, the grid is for {self.spectrometer.isotope.name}")
        too_big = sites.abs_cq_MHz > self.cq_nodes[-1] + 1e-12
        if too_big.any():
            raise SiteError(f"|CQ| = {sites.abs_cq_MHz.max():.4g} MHz exceeds the grid's largest node "
                            f"{self.cq_nodes[-1]:.4g} MHz: build the grid with a larger cq_max_MHz")

    def spectrum(self, weights: NodeWeights, axis: PPMAxis, gaussian_sd_ppm: float = 0.0,
                 rows_per_block: int = 2) -> np.ndarray:
        """Σ_g Σ_k W[g, k] I_g(ν_j − δ_k) on ``axis`` (intensity per ppm, unnormalised).

        The weights' shift lattice must be the axis lattice; ``gaussian_sd_ppm`` convolves
        the result with a Gaussian of that standard deviation along δ (the KDE's
        conditional width). Nodes are processed in blocks of ``rows_per_block`` CQ rows,
        each with FFTs just long enough for its lines; the FFTs of a block's lineshapes are
        kept on the grid after first use (one-off cost per window size, complex64).
        """
        if abs(axis.step_ppm - self.step_ppm) > 1e-9 * self.step_ppm:
            raise ValueError(f"axis step {axis.step_ppm} ppm differs from the grid step {self.step_ppm} ppm")
        n = axis.count
        k0_all = np.floor(weights.shift_index).astype(np.int64)
        frac_all = weights.shift_index - k0_all
        # each weight becomes two lattice deposits (linear interpolation)
        k = np.concatenate([k0_all, k0_all + 1])
        w = np.concatenate([weights.weight * (1.0 - frac_all), weights.weight * frac_all])
        nodes = np.concatenate([weights.nodes, weights.nodes])
        margin = int(np.ceil(5.0 * gaussian_sd_ppm / self.step_ppm))  # reach of the Gaussian's tails (bins)
        reach = ((k + self.offset_low + self.n_offsets - 1 + margin >= 0) & (k + self.offset_low - margin <= n - 1)
                 & (w != 0))
        k, w, nodes = k[reach], w[reach], nodes[reach]
        order = np.argsort(nodes, kind="stable")
        k, w, nodes = k[order], w[order], nodes[order]
        active, first = np.unique(nodes, return_index=True)
        bounds = np.append(first, len(nodes))
        n_eta = len(self.eta_nodes)
        block_nodes = rows_per_block * n_eta
        out = np.zeros(n)
        block_of = active // block_nodes
        for blk in np.unique(block_of):
            members = np.flatnonzero(block_of == blk)
            block = active[members]
            first_node = int(blk) * block_nodes
            rows = np.arange(first_node // n_eta, min(first_node // n_eta + rows_per_block, len(self.cq_nodes)))
            a, b = int(self.row_first[rows].min()), int(self.row_last[rows].max())
            m_lo, m_hi = self.offset_low + a, self.offset_low + b
            sl = slice(bounds[members[0]], bounds[members[-1] + 1])
            # only the span of shifts this block's weights occupy (and that reach the axis)
            k_lo = max(-m_hi - margin, int(k[sl].min()))
            n_shift = min(n - m_lo + margin, int(k[sl].max()) + 1) - k_lo
            if n_shift <= 0:
                continue
            n_dense = n_shift + 2 * margin
            pad = n_dense + b - a + 1  # linear (not circular) convolution
            length = 1 << int(np.ceil(np.log2(pad)))  # powers of two: few window sizes per block
            key = (int(blk), rows_per_block, length)
            shapes_f = self._fft_cache.get(key)
            if shapes_f is None:  # FFT of this block's lineshapes for this length: computed once
                all_nodes = np.arange(first_node, min(first_node + block_nodes, self.n_nodes))
                shapes_f = sfft.rfft(self.node_shapes(all_nodes, a, b), length, axis=1).astype(np.complex64)
                self._fft_cache[key] = shapes_f
            local = np.searchsorted(block, nodes[sl])
            kk = k[sl] - k_lo
            ok = (kk >= 0) & (kk < n_shift)
            dense = np.bincount(local[ok] * n_dense + kk[ok] + margin, weights=w[sl][ok],
                                minlength=len(block) * n_dense).reshape(len(block), n_dense)
            spectrum_f = np.einsum("gf,gf->f", sfft.rfft(dense, length, axis=1), shapes_f[block - first_node])
            if gaussian_sd_ppm > 0:
                freq = np.fft.rfftfreq(length, d=self.step_ppm)
                spectrum_f *= np.exp(-2.0 * (np.pi * freq * gaussian_sd_ppm) ** 2)
            full = sfft.irfft(spectrum_f, length)[:pad]
            # lattice index k_lo + k' plus offset m_lo + m' lands on axis bin j = k_lo + m_lo + k' + m'
            base = k_lo - margin + m_lo
            j0, j1 = max(0, base), min(n, base + pad)
            if j1 > j0:
                out[j0:j1] += full[j0 - base:j1 - base]
        return out / axis.step_ppm


def site_node_weights(sites: Sites, grid: LineshapeGrid, axis: PPMAxis, align_centres: bool = True) -> NodeWeights:
    """Bandwidth → 0: each site's weight spread over its 4 surrounding (|CQ|, η) nodes by
    bilinear interpolation in (|CQ|, η) (later split over 2 lattice points in δ); the CQ
    nodes may be non-uniform (adapted grid).

    ``align_centres``: each node's share is placed at δiso + δQIS(site) − δQIS(node), so
    that its centre of gravity is the site's (δiso + δQIS) rather than the node's; this
    removes the first-order error of mixing lines of neighbouring CQ (the lines move with
    CQ² as well as widen). The δ coordinate of the weights is then the CoG-matched shift.
    """
    grid.check_sites(sites)
    te = sites.eta_q / grid.eta_step
    n_cq, n_eta = len(grid.cq_nodes), len(grid.eta_nodes)
    c0 = np.clip(np.searchsorted(grid.cq_nodes, sites.abs_cq_MHz, side="right") - 1, 0, n_cq - 2)
    e0 = np.minimum(np.floor(te).astype(np.int64), n_eta - 2)
    fc = (sites.abs_cq_MHz - grid.cq_nodes[c0]) / (grid.cq_nodes[c0 + 1] - grid.cq_nodes[c0])
    fe = te - e0
    qis = quadrupolar_shift_ppm(sites.abs_cq_MHz, sites.eta_q, grid.spectrometer)
    nodes, weights, shifts = [], [], []
    for dc, wc in ((0, 1.0 - fc), (1, fc)):
        for de, we in ((0, 1.0 - fe), (1, fe)):
            nodes.append((c0 + dc) * n_eta + e0 + de)
            weights.append(sites.weight * wc * we)
            if align_centres:
                node_qis = quadrupolar_shift_ppm(grid.cq_nodes[c0 + dc], grid.eta_nodes[e0 + de], grid.spectrometer)
                shifts.append(axis.index_of(sites.delta_iso_ppm + qis - node_qis))
            else:
                shifts.append(axis.index_of(sites.delta_iso_ppm))
    return NodeWeights(np.concatenate(nodes), np.concatenate(shifts), np.concatenate(weights))
