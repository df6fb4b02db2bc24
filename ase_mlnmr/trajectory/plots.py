"""Plots of a trajectory analysis (matplotlib, the ``plot`` extra): G(s) per element with
the plateau window and value marked; distributions of δiso (or σiso), CQ and η per element
over all frames (instantaneous) and of the time-averaged values."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

__all__ = ["plot_correlations", "plot_distributions"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_correlations(result, path: Path) -> Path:
    """G_EFG(s) and G_shift(s) per element (log time axis), plateau P and window marked."""
    plt = _pyplot()
    g = result.g
    channels = [c for c in range(len(result.channels)) if np.isfinite(g[:, c]).any()] or [0]
    figure, axes = plt.subplots(1, len(channels), figsize=(5.5 * len(channels), 4), squeeze=False)
    for column, c in enumerate(channels):
        channel = result.channels[c]
        axis = axes[0, column]
        lags = result.lags_fs[c]
        for a, element in enumerate(result.groups):
            keep = (lags > 0) & np.isfinite(g[a, c])
            if not keep.any():
                continue
            line, = axis.semilogx(lags[keep], g[a, c][keep], label=element)
            entry = result.plateaus.get(element, {})
            if channel == "efg" and entry.get("P") is not None:
                start, end = entry["window_fs"]
                axis.hlines(entry["P"], start, end, colors=line.get_color(), linestyles="--")
                axis.axvspan(start, end, color=line.get_color(), alpha=0.08)
        axis.set_xlabel("lag s (fs)")
        axis.set_ylabel(f"G_{channel}(s)")
        axis.set_title(f"{channel} ({result.estimator}); dashed: plateau P")
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def _streamed_histogram(store, name: str, members: np.ndarray, averaged: np.ndarray):
    """Density histogram (40 bins) of every frame's value of the ``members`` atoms, read in
    chunks of atoms in two passes (range, then counts): memory independent of the length."""
    chunk = store.chunk_size(name, 64e6)
    low, high = (averaged.min(), averaged.max()) if averaged.size else (np.inf, -np.inf)
    for passes in range(2):
        if passes == 1:
            if not np.isfinite(low):
                return None, None
            bins = np.linspace(low, high if high > low else low + 1.0, 41)
            counts = np.zeros(40)
        for start in range(0, store.n_atoms, chunk):
            stop = min(start + chunk, store.n_atoms)
            wanted = members[(members >= start) & (members < stop)] - start
            if wanted.size == 0:
                continue
            values = store.read_atoms(name, start, stop)[wanted].ravel()
            values = values[np.isfinite(values)]
            if values.size == 0:
                continue
            if passes == 0:
                low, high = min(low, values.min()), max(high, values.max())
            else:
                counts += np.histogram(values, bins=bins)[0]
    total = counts.sum()
    return (counts / (total * np.diff(bins)) if total else counts), bins


def plot_distributions(accumulator, averages: Mapping[str, np.ndarray], path: Path) -> Path:
    """Histograms per element of the shift, CQ and η: every frame (read back from the
    series store in chunks of atoms) against the time-averaged values."""
    plt = _pyplot()
    quantities = (("shift", "shift (ppm)"), ("cq", "CQ (MHz)"), ("eta", "η"))
    store = accumulator.store
    symbols = np.array(accumulator.symbols)
    figure, axes = plt.subplots(len(accumulator.elements), 3, figsize=(13, 3.2 * len(accumulator.elements)),
                                squeeze=False)
    for row, element in enumerate(accumulator.elements):
        members = np.flatnonzero(symbols == element)
        for col, (name, label) in enumerate(quantities):
            axis = axes[row, col]
            source = accumulator.shift_quantity.get(element, "delta_iso") if name == "shift" else name
            averaged = averages[source]
            averaged = averaged[members][np.isfinite(averaged[members])]
            counts, bins = _streamed_histogram(store, name, members, averaged)
            if counts is None:
                axis.set_visible(False)
                continue
            axis.stairs(counts, bins, fill=True, alpha=0.5, label="instantaneous")
            axis.hist(averaged, bins=bins, density=True, histtype="step", linewidth=1.5, label="time-averaged")
            axis.set_xlabel(f"{element} {label if source != 'ms_iso' else 'σiso (ppm)'}")
            axis.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
