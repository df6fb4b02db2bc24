"""Time-correlation functions of per-atom NMR quantities: definitions and the exact estimator.

For the atoms i of one element, T samples x_i(t) of a channel (the five λ = 2 EFG
components, for which x·x' = V:V'; or a scalar, δiso or σiso) and all time origins,

    G(s) = [Σ_i Σ_t0 x_i(t0+s)·x_i(t0) / N(s)] / [Σ_i Σ_t0 x_i(t0)·x_i(t0) / N(0)],

N(s) = n_atoms (T − s) the number of terms. The fluctuation form replaces x_i by
x_i − x̄_i (the atom's own mean over the T samples).

Two estimators with the same definition and the same sum layout
``(n_groups, n_channels, n_blocks, n_lag)`` (atoms of a group in atom-id order, the r-th of
n in block r·n_blocks/n):

* :class:`FFTCorrelation` — exact, all lags 0..T−1, by FFT (Wiener–Khinchin, zero-padded to
  ≥ 2T so the correlation is linear, not circular) over per-atom series in a disk-backed
  :class:`SeriesStore`, read in chunks of atoms;
* the streaming multiple-tau correlator of the core
  (:class:`ase_mlnmr.core._correlator.StreamingCorrelator`).

Plateau detection, normalisation and the result file are the core's (one implementation,
shared with the LAMMPS fix).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import scipy.fft

from ..core._correlator import (CorrelatorError, StreamingCorrelator, normalised_correlation, plateau,
                                write_result)

__all__ = ["CHANNELS", "SeriesStore", "FFTCorrelation", "atom_blocks", "lag_sums_fft", "CorrelationResult",
           "read_result", "scaling_factors", "write_scaling_json", "CorrelatorError", "StreamingCorrelator"]

#: Channels of the trajectory tools and the fix: name → components per sample.
CHANNELS = {"efg": 5, "delta": 1, "sigma": 1}

RESULT_FORMAT = "ase_mlnmr.correlation"
RESULT_VERSION = 1


def atom_blocks(groups_in_id_order: np.ndarray, n_groups: int, n_blocks: int) -> np.ndarray:
    """Block of each atom (atoms given in id order): the r-th of the n atoms of its group
    goes to block r·n_blocks // n — the rule of the core's reduction."""
    groups = np.asarray(groups_in_id_order)
    blocks = np.empty(len(groups), dtype=np.int64)
    for group in range(n_groups):
        members = np.flatnonzero(groups == group)
        blocks[members] = (np.arange(len(members)) * n_blocks) // max(len(members), 1)
    return blocks


def lag_sums_fft(series: np.ndarray, fluctuation: bool = False) -> np.ndarray:
    """Σ_t0 x(t0+s)·x(t0) for s = 0..T−1 of each atom: ``series`` (n_atoms, T, d) → (n_atoms, T).

    Wiener–Khinchin with zero padding to a fast length ≥ 2T − 1: irfft(Σ_d |rfft(x)|²).
    ``fluctuation`` subtracts each atom's mean over its T samples first.
    """
    x = np.asarray(series, dtype=float)
    if x.ndim != 3:
        raise ValueError(f"series must be (n_atoms, T, d), got shape {x.shape}")
    n_samples = x.shape[1]
    if fluctuation:
        x = x - x.mean(axis=1, keepdims=True)
    n_fft = scipy.fft.next_fast_len(2 * n_samples - 1, real=True)
    spectrum = scipy.fft.rfft(x, n=n_fft, axis=1)
    power = (spectrum.real**2 + spectrum.imag**2).sum(axis=2)
    return scipy.fft.irfft(power, n=n_fft, axis=1)[:, :n_samples]


class SeriesStore:
    """Per-atom time series on disk, one raw float64 file per channel, frame-major
    (frame t holds n_atoms × d values), appended frame by frame and read back in chunks of
    atoms through ``np.memmap`` — memory independent of the trajectory length.

    Parameters
    ----------
    directory : where the files go (a temporary directory if None, removed by :meth:`close`)
    n_atoms : atoms per frame (in atom-id order)
    channels : name → components per sample
    """

    def __init__(self, directory: str | Path | None, n_atoms: int, channels: Mapping[str, int]) -> None:
        self._temporary = directory is None
        self.directory = Path(tempfile.mkdtemp(prefix="mlnmr_series_") if directory is None else directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.n_atoms = int(n_atoms)
        self.channels = dict(channels)
        self.n_frames = 0
        self._files = {name: open(self.directory / f"{name}.f64", "wb") for name in self.channels}

    def append(self, values: Mapping[str, np.ndarray]) -> None:
        """One frame: ``values[name]`` of shape (n_atoms, d) for every channel."""
        for name, d in self.channels.items():
            array = np.ascontiguousarray(values[name], dtype=np.float64)
            if array.shape != (self.n_atoms, d) and array.size != self.n_atoms * d:
                raise ValueError(f"channel {name}: expected ({self.n_atoms}, {d}) values, got {array.shape}")
            self._files[name].write(array.tobytes())
        self.n_frames += 1

    def flush(self) -> None:
        for stream in self._files.values():
            stream.flush()

    def read_atoms(self, name: str, start: int, stop: int) -> np.ndarray:
        """(stop − start, n_frames, d) series of atoms start..stop−1 (in id order)."""
        self.flush()
        d = self.channels[name]
        if self.n_frames == 0:
            return np.zeros((stop - start, 0, d))
        mapped = np.memmap(self.directory / f"{name}.f64", dtype=np.float64, mode="r",
                           shape=(self.n_frames, self.n_atoms, d))
        return np.ascontiguousarray(np.swapaxes(mapped[:, start:stop, :], 0, 1))

    def chunk_size(self, name: str, memory_bytes: float) -> int:
        """Atoms per chunk so that a chunk's FFT work arrays stay below ``memory_bytes``
        (≈ 8 copies of T·d doubles per atom: series, padded spectrum, power, products)."""
        per_atom = 8.0 * 8 * max(self.n_frames, 1) * self.channels[name]
        return int(max(1, min(self.n_atoms, memory_bytes // per_atom)))

    def close(self) -> None:
        for stream in self._files.values():
            stream.close()
        if self._temporary:
            shutil.rmtree(self.directory, ignore_errors=True)


@dataclass
class FFTCorrelation:
    """Exact all-origins lag sums from a :class:`SeriesStore`, in the core's layout.

    ``groups`` (n_atoms,) group index of each atom of the store (atoms in id order; −1:
    not analysed). Atoms whose series of a channel is NaN have no values there and add nothing.
    """

    store: SeriesStore
    groups: np.ndarray
    n_groups: int
    memory_bytes: float = 256e6

    def reduce(self, channel_names: Sequence[str], n_blocks: int = 1, fluctuation: bool = False
               ) -> tuple[np.ndarray, np.ndarray]:
        """Sums and counts (n_groups, n_channels, n_blocks, T): each atom's exact lag sums
        added in atom-id order into its block (same rule as the streaming reduction)."""
        n_frames = self.store.n_frames
        shape = (self.n_groups, len(channel_names), n_blocks, n_frames)
        sums, counts = np.zeros(shape), np.zeros(shape)
        groups = np.asarray(self.groups)
        blocks = atom_blocks(groups, self.n_groups, n_blocks)
        per_atom_counts = np.arange(n_frames, 0, -1, dtype=float)
        for c, name in enumerate(channel_names):
            chunk = self.store.chunk_size(name, self.memory_bytes)
            for start in range(0, self.store.n_atoms, chunk):
                stop = min(start + chunk, self.store.n_atoms)
                atom_sums = lag_sums_fft(self.store.read_atoms(name, start, stop), fluctuation)
                for k, atom in enumerate(range(start, stop)):
                    if groups[atom] < 0 or not np.isfinite(atom_sums[k, 0]):
                        continue  # not analysed, or no values of this channel
                    sums[groups[atom], c, blocks[atom]] += atom_sums[k]
                    counts[groups[atom], c, blocks[atom]] += per_atom_counts
        return sums, counts


@dataclass
class CorrelationResult:
    """G(s) per group and channel with the sums behind it and the plateau of each group."""

    estimator: str
    groups: list[str]
    channels: list[str]
    lags_fs: np.ndarray          # (n_channels, n_lag)
    sums: np.ndarray             # (n_groups, n_channels, n_blocks, n_lag)
    counts: np.ndarray
    fluctuation: bool
    plateaus: dict               # group -> {"P", "P_err", "window_fs", "cq_scale"} for the EFG channel
    metadata: dict

    @property
    def g(self) -> np.ndarray:
        """G (n_groups, n_channels, n_lag); NaN where no terms."""
        out = np.empty(self.sums.shape[:2] + self.sums.shape[3:])
        for a in range(out.shape[0]):
            for c in range(out.shape[1]):
                out[a, c] = normalised_correlation(self.sums[a, c], self.counts[a, c])
        return out

    def header(self) -> dict:
        return {"format": RESULT_FORMAT, "version": RESULT_VERSION, "estimator": self.estimator,
                "groups": self.groups, "channels": self.channels, "fluctuation": self.fluctuation,
                "n_blocks": int(self.sums.shape[2]), "plateau": self.plateaus, **self.metadata}

    def write(self, path: str | Path) -> Path:
        """Write the result file (JSON header line + CSV, atomically) through the core."""
        write_result(path, json.dumps(self.header(), allow_nan=True), self.groups, self.channels, self.lags_fs,
                     self.g, self.sums.sum(axis=2), self.counts.sum(axis=2))
        return Path(path)


def read_result(path: str | Path) -> tuple[dict, dict]:
    """Read a result file (written by this package or the LAMMPS fix).

    Returns the header and ``{(group, channel): {"lag_fs", "g", "sum", "count"}}`` arrays.
    """
    path = Path(path)
    with open(path) as stream:
        first = stream.readline()
        columns = stream.readline().strip().split(",")
        if not first.startswith("# ") or columns != ["group", "channel", "lag_fs", "g", "sum", "count"]:
            raise ValueError(f"{path}: not an ase_mlnmr correlation result file (bad header lines)")
        try:
            header = json.loads(first[2:])
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: header line is not JSON ({error})") from error
        if header.get("format") != RESULT_FORMAT:
            raise ValueError(f"{path}: format {header.get('format')!r}, expected {RESULT_FORMAT!r}")
        rows: dict[tuple[str, str], list[list[float]]] = {}
        for number, line in enumerate(stream, start=3):
            parts = line.strip().split(",")
            if len(parts) != 6:
                raise ValueError(f"{path}, line {number}: expected 6 fields, got {len(parts)}")
            rows.setdefault((parts[0], parts[1]), []).append([float(x) for x in parts[2:]])
    tables = {key: dict(zip(("lag_fs", "g", "sum", "count"), np.array(values).T)) for key, values in rows.items()}
    return header, tables


def scaling_factors(lags_fs: np.ndarray, sums: np.ndarray, counts: np.ndarray, groups: Sequence[str],
                    half_span_fs: float, window_fs: tuple[float, float | None] | None = None) -> dict:
    """Per group: plateau P of G_EFG (core rule), its block-averaging uncertainty and
    ``cq_scale`` = √P, the factor on tensor magnitudes and CQ (Charpentier 2025; the paper,
    read literally, scales by P). ``sums``/``counts`` are (n_groups, n_blocks, n_lag) for
    the EFG channel. Groups whose plateau cannot be found get an ``error`` entry."""
    result = {}
    for a, name in enumerate(groups):
        try:
            found = plateau(lags_fs, sums[a], counts[a], half_span_fs, window_fs)
        except CorrelatorError as error:
            result[name] = {"P": None, "P_err": None, "cq_scale": None, "error": str(error)}
            continue
        p_value = found["P"]
        cq_scale = float(np.sqrt(p_value)) if p_value >= 0 else None
        p_err = None if not np.isfinite(found["P_err"]) else float(found["P_err"])
        result[name] = {"P": float(p_value), "P_err": p_err, "cq_scale": cq_scale,
                        "cq_scale_err": None if (p_err is None or not cq_scale) else p_err / (2 * cq_scale),
                        "window_fs": [float(x) for x in found["window_fs"]]}
    return result


def write_scaling_json(path: str | Path, factors: Mapping[str, dict]) -> Path:
    """The small JSON the spectra code reads: ``{El: {"cq_scale": √P, "P": P, "P_err", ...}}``
    (one key per element, nothing else at the top level), written atomically.

    ``cq_scale`` = √P multiplies CQ and EFG magnitudes; the paper (Charpentier 2025), read
    literally, scales by P — see docs/trajectory.md.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(dict(factors), indent=1))
    os.replace(tmp, path)
    return path
