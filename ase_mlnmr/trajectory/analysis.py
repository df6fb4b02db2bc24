"""Trajectory analysis: frames → per-frame values → time averages, correlation functions
and the vibrational EFG scaling factor, serial or MPI-parallel over frames.

Determinism (docs/trajectory.md, "MPI"): frames are grouped in chunks of a fixed number
(default :data:`CHUNK_FRAMES`) of consecutive kept frames, whatever the number of ranks. Chunks are
predicted on any rank; rank 0 takes them in frame order and (i) adds the chunk's time sums,
summed frame by frame in order, to the totals, (ii) feeds the streaming correlator frame by
frame, (iii) appends the frames to the series store. Sums over atoms run in atom-id order
(the core's reduction). Hence 1, 2 or K ranks give bitwise the same results.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..core._correlator import StreamingCorrelator
from .correlation import CorrelationResult, FFTCorrelation, SeriesStore, scaling_factors, write_scaling_json
from .frame_values import FrameValues, quadrupolar_values

__all__ = ["CHUNK_FRAMES", "AnalysisOptions", "TrajectoryAccumulator", "TrajectoryResults"]

#: Default frames per chunk of the time sums (independent of the number of MPI ranks).
CHUNK_FRAMES = 16

#: Channels of the series store: name → components per atom and frame.
STORE_CHANNELS = {"efg": 5, "shift": 1, "ms_iso": 1, "delta_iso": 1, "ms_l2": 5, "vzz": 1, "cq": 1, "eta": 1,
                  "ood": 1}
#: Channels correlated: the EFG (G_EFG) and the shift (δiso where calibrated, else σiso).
CORRELATED = ("efg", "shift")
#: Committee values (docs/uncertainty.md) time-averaged per atom, NaN without a committee:
#: frame value → (average name, time_averaged.csv column).
COMMITTEE = {"ms_iso_std": ("ms_iso_std_mean", "sigma_iso_std_mean_ppm"),
             "cq_std": ("cq_std_mean", "cq_std_mean_MHz"),
             "vzz_axis_flag": ("vzz_axis_flag_fraction", "vzz_axis_flag_fraction")}


@dataclass
class AnalysisOptions:
    """Settings of the correlation analysis.

    p, m, n_levels : streaming correlator levels (first level p samples, averaging m)
    n_blocks : atom blocks (contiguous in id order, per element) for the plateau uncertainty
    fluctuation : correlate fluctuations about each atom's own mean (else the raw values)
    plateau_window_fs : (start, end) overriding the automatic plateau window (end None: T/2)
    exact : also run the exact FFT estimator over the disk-backed series (scaling from it)
    memory_bytes : memory budget of one FFT chunk of atoms
    """

    p: int = 16
    m: int = 2
    n_levels: int = 12
    n_blocks: int = 8
    fluctuation: bool = False
    plateau_window_fs: tuple[float, float | None] | None = None
    exact: bool = True
    memory_bytes: float = 256e6


@dataclass
class TrajectoryResults:
    """What a run produced; arrays per atom are in atom-id order."""

    ids: np.ndarray
    symbols: list[str]
    n_frames: int
    frame_time_fs: float
    averages: dict[str, np.ndarray]
    correlations: dict[str, CorrelationResult]
    scaling: dict[str, dict]
    files: dict[str, Path] = field(default_factory=dict)
    skipped_frames: list = field(default_factory=list)


class TrajectoryAccumulator:
    """Takes chunks of :class:`FrameValues` in frame order (rank 0 only).

    Parameters
    ----------
    first : the first frame's values (fixes the atom set: ids and elements; the shift
        channel of an element is δiso if the element has δiso values, else σiso)
    frame_time_fs : time between frames
    options : :class:`AnalysisOptions`
    store_dir : folder of the series store (kept), or None for a temporary one
    """

    def __init__(self, first: FrameValues, frame_time_fs: float, options: AnalysisOptions,
                 store_dir: str | Path | None) -> None:
        self.ids = np.asarray(first.ids)
        self.symbols = list(first.symbols)
        self.options = options
        self.frame_time_fs = float(frame_time_fs)
        has_any = np.all(np.isfinite(first.efg.reshape(len(self.ids), 9)), axis=1) | np.isfinite(first.ms_iso)
        if not has_any.any():
            raise ValueError("no atom of the first frame has an EFG or a shielding value to analyse")
        self.elements = sorted({s for s, keep in zip(self.symbols, has_any) if keep})
        index = {e: k for k, e in enumerate(self.elements)}
        self.groups = np.array([index.get(s, -1) for s in self.symbols], dtype=np.int32)
        symbols = np.array(self.symbols)
        self.shift_quantity = {}  # elements with a shift channel: δiso where available, else σiso
        for element in self.elements:
            for quantity in ("delta_iso", "ms_iso"):
                if np.isfinite(getattr(first, quantity)[symbols == element]).any():
                    self.shift_quantity[element] = quantity
                    break
        self.correlator = StreamingCorrelator([5, 1], [1, 1], self.frame_time_fs, p=options.p, m=options.m,
                                              n_levels=options.n_levels, n_groups=max(len(self.elements), 1),
                                              fluctuation_sums=True)
        self.store = SeriesStore(store_dir, len(self.ids), STORE_CHANNELS)
        n = len(self.ids)
        self.totals = {"efg": np.zeros((n, 3, 3)), "ms": np.zeros((n, 3, 3)), "efg_sq": np.zeros(n),
                       "ms_iso": np.zeros(n), "delta_iso": np.zeros(n), **{name: np.zeros(n) for name in COMMITTEE}}
        self.max_ood = np.full(n, -np.inf)
        self.n_frames = 0

    def _select(self, values: FrameValues) -> FrameValues:
        """The reference atoms out of a frame whose atoms changed (allowed by the user)."""
        if np.array_equal(values.ids, self.ids):
            return values
        position = np.searchsorted(values.ids, self.ids)
        position = np.minimum(position, len(values.ids) - 1)
        if not np.array_equal(values.ids[position], self.ids):
            missing = np.setdiff1d(self.ids, values.ids)[:5]
            raise ValueError(f"frame {values.index}: atoms {missing.tolist()} of the first frame are missing")
        fields = {name: getattr(values, name)[position] for name in
                  ("efg", "ms", "ms_iso", "delta_iso", "ood", "cq", "eta", "vzz", *COMMITTEE)}
        return FrameValues(index=values.index, ids=self.ids, symbols=self.symbols, **fields)

    def add_chunk(self, chunk: Sequence[FrameValues]) -> None:
        """One chunk of consecutive frames, in frame order."""
        chunk = [self._select(values) for values in chunk]
        sums = {name: np.zeros_like(total) for name, total in self.totals.items()}
        for values in chunk:
            sums["efg"] += values.efg
            sums["ms"] += values.ms
            sums["efg_sq"] += np.einsum("nij,nij->n", values.efg, values.efg)
            sums["ms_iso"] += values.ms_iso
            sums["delta_iso"] += values.delta_iso
            for name in COMMITTEE:
                sums[name] += getattr(values, name)
            np.fmax(self.max_ood, values.ood, out=self.max_ood)
            self._correlate_and_store(values)
        for name, total in self.totals.items():
            total += sums[name]

    def _shift(self, values: FrameValues) -> np.ndarray:
        shift = np.full(len(self.ids), np.nan)
        for element, quantity in self.shift_quantity.items():
            members = np.array([s == element for s in self.symbols])
            shift[members] = getattr(values, quantity)[members]
        return shift

    def _correlate_and_store(self, values: FrameValues) -> None:
        efg_l2, shift = values.efg_l2, self._shift(values)
        for channel, data in ((0, efg_l2), (1, shift[:, None])):
            keep = (self.groups >= 0) & np.all(np.isfinite(data), axis=1)
            self.correlator.add(channel, self.n_frames, self.ids[keep], self.groups[keep], data[keep])
        self.store.append({"efg": efg_l2, "shift": shift, "ms_iso": values.ms_iso, "delta_iso": values.delta_iso,
                           "ms_l2": values.ms_l2, "vzz": values.vzz, "cq": values.cq, "eta": values.eta,
                           "ood": values.ood})
        self.n_frames += 1

    # ------------------------------------------------------------------ results
    def averages(self, isotopes: Mapping[str, str] | None) -> dict[str, np.ndarray]:
        """Time-averaged tensors (component-wise) and the CQ, η, δiso that follow from them."""
        n_frames = max(self.n_frames, 1)
        efg = self.totals["efg"] / n_frames
        cq, eta, vzz = quadrupolar_values(efg, self.symbols, isotopes)
        return {"efg": efg, "ms": self.totals["ms"] / n_frames, "ms_iso": self.totals["ms_iso"] / n_frames,
                "delta_iso": self.totals["delta_iso"] / n_frames, "cq": cq, "eta": eta, "vzz": vzz,
                "efg_mean_square": self.totals["efg_sq"] / n_frames,
                "ood_max": np.where(np.isfinite(self.max_ood), self.max_ood, np.nan),
                **{average: self.totals[name] / n_frames for name, (average, _) in COMMITTEE.items()}}

    def rms_ratio(self, averages: Mapping[str, np.ndarray]) -> dict[str, float]:
        """Per element √(Σ_i |V̄_i|² / Σ_i ⟨|V_i|²⟩): RMS magnitude of time-averaged over
        instantaneous EFG tensors (≈ √P up to O(τ/T))."""
        out = {}
        for k, element in enumerate(self.elements):
            members = (self.groups == k) & np.isfinite(averages["efg_mean_square"])
            if members.any():
                averaged = np.einsum("nij,nij->n", averages["efg"][members], averages["efg"][members]).sum()
                out[element] = float(np.sqrt(averaged / averages["efg_mean_square"][members].sum()))
        return out

    def correlations(self) -> dict[str, CorrelationResult]:
        """Streaming (always) and exact FFT (``options.exact``) correlation results."""
        opts = self.options
        half_span = 0.5 * self.n_frames * self.frame_time_fs
        metadata = {"frame_time_fs": self.frame_time_fs, "n_frames": self.n_frames,
                    "shift_quantity": self.shift_quantity}
        results = {}
        sums, counts = self.correlator.reduce(opts.n_blocks, opts.fluctuation)
        lags = np.stack([self.correlator.lags_fs(c) for c in range(2)])
        config = self.correlator.config
        results["streaming"] = self._result("multiple-tau", lags, sums, counts, half_span,
                                            {**metadata, "p": config["p"], "m": config["m"],
                                             "n_levels": config["n_levels"]})
        if opts.exact:
            exact = FFTCorrelation(self.store, self.groups, len(self.elements), opts.memory_bytes)
            sums, counts = exact.reduce(list(CORRELATED), opts.n_blocks, opts.fluctuation)
            lags = np.tile(np.arange(self.n_frames) * self.frame_time_fs, (2, 1))
            results["fft"] = self._result("fft", lags, sums, counts, half_span, metadata)
        return results

    def _result(self, estimator: str, lags: np.ndarray, sums: np.ndarray, counts: np.ndarray, half_span: float,
                metadata: dict) -> CorrelationResult:
        factors = scaling_factors(lags[0], sums[:, 0], counts[:, 0], self.elements, half_span,
                                  self.options.plateau_window_fs)
        return CorrelationResult(estimator, list(self.elements), list(CORRELATED), lags, sums, counts,
                                 self.options.fluctuation, factors, dict(metadata))


def write_outputs(accumulator: TrajectoryAccumulator, last_atoms, output: Path, isotopes: Mapping[str, str] | None,
                  plots: bool = True) -> TrajectoryResults:
    """Write CSV/NPZ/magres/JSON/result files (and plots) into ``output``."""
    from ase.io import write

    from ..calculator import store_magres_tensors

    output.mkdir(parents=True, exist_ok=True)
    averages = accumulator.averages(isotopes)
    correlations = accumulator.correlations()
    chosen = correlations["fft" if "fft" in correlations else "streaming"]
    ratios = accumulator.rms_ratio(averages)
    scaling = {element: {**entry, "estimator": chosen.estimator, "rms_ratio": ratios.get(element)}
               for element, entry in chosen.plateaus.items()}
    files = {"scaling": write_scaling_json(output / "vibrational_scaling.json", scaling)}
    for name, result in correlations.items():
        files[f"correlation_{name}"] = result.write(output / f"correlation_{name}.csv")
    ids, symbols = accumulator.ids, accumulator.symbols
    np.savez(output / "time_averages.npz", ids=ids, symbols=np.array(symbols),
             **{name: value for name, value in averages.items()})
    files["npz"] = output / "time_averages.npz"
    with open(output / "time_averaged.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "element", "sigma_iso_ppm", "delta_iso_ppm", "cq_MHz", "eta_q", "vzz_au",
                         "efg_rms_au", "ood_max"] + [column for _, column in COMMITTEE.values()])
        for k in range(len(ids)):
            row = [averages[name][k] for name in ("ms_iso", "delta_iso", "cq", "eta", "vzz")]
            row += [np.sqrt(averages["efg_mean_square"][k]), averages["ood_max"][k]]
            row += [averages[average][k] for average, _ in COMMITTEE.values()]
            writer.writerow([int(ids[k]), symbols[k]] + ["" if not np.isfinite(v) else f"{v:.10g}" for v in row])
    files["csv"] = output / "time_averaged.csv"
    atoms = last_atoms.copy()
    atoms.calc = None
    atoms.info.pop("magres_units", None)
    store_magres_tensors(atoms, {name: (averages[name], np.all(np.isfinite(averages[name].reshape(len(ids), 9)), axis=1))
                                 for name in ("ms", "efg")})
    write(output / "time_averaged.magres", atoms, format="magres", parallel=False)
    files["magres"] = output / "time_averaged.magres"
    results = TrajectoryResults(ids, symbols, accumulator.n_frames, accumulator.frame_time_fs, averages,
                                correlations, scaling, files)
    if plots:
        from .plots import plot_correlations, plot_distributions

        files["plot_correlation"] = plot_correlations(chosen, output / "correlation.png")
        files["plot_distributions"] = plot_distributions(accumulator, averages, output / "distributions.png")
    store = accumulator.store
    store.flush()
    np.save(store.directory / "ids.npy", ids)
    (store.directory / "index.json").write_text(json.dumps(
        {"layout": "raw float64, frame-major: file <channel>.f64 has shape (n_frames, n_atoms, components)",
         "n_frames": store.n_frames, "n_atoms": store.n_atoms, "channels": store.channels,
         "symbols": symbols, "frame_time_fs": accumulator.frame_time_fs,
         "units": {"efg": "au (lambda=2 components)", "shift": "ppm", "ms_iso": "ppm", "delta_iso": "ppm",
                   "ms_l2": "ppm", "vzz": "au", "cq": "MHz", "eta": "", "ood": ""}}, indent=1))
    return results
