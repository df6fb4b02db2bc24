"""Stage 5: the report folder — PNG plots that each carry the disclaimer, CSV tables and
the printed summary table of every file written."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..nmr.efg import quadrupolar_parameters
from ..nmr.shielding import calibrated_shift
from .settings import DISCLAIMER

__all__ = ["write_csv", "figure", "save_figure", "plot_parity", "plot_correlations", "plot_distributions",
           "plot_spectra_panels", "plot_mqmas_panels", "plot_ood", "summary_table"]


def write_csv(path: Path, rows: Sequence[Mapping], columns: Sequence[str] | None = None) -> Path:
    """CSV with a header; floats with 8 significant digits, missing values empty."""
    columns = list(columns or (rows[0].keys() if rows else []))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else
                                 (f"{row[k]:.8g}" if isinstance(row[k], (float, np.floating)) else row[k]))
                             for k in columns})
    return path


def figure(n_panels: int, width: float = 4.2, height: float = 3.6):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, n_panels, figsize=(width * n_panels, height + 0.5), squeeze=False)
    return fig, list(axes[0])


def save_figure(fig, path: Path) -> Path:
    """Save with the disclaimer written across the bottom of the figure."""
    import matplotlib.pyplot as plt

    fig.text(0.5, 0.01, DISCLAIMER, ha="center", va="bottom", fontsize=8, color="firebrick")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_parity(pairs: Mapping, calibration: Mapping[str, Mapping[str, float]], isotopes: Mapping[str, str],
                path: Path) -> Path:
    """Held-out parity: δiso (calibrated, ppm) and CQ (MHz) per element, DFT vs model."""
    fig, axes = figure(2)
    ms, efg = pairs.get("ms"), pairs.get("efg")
    for element in sorted(calibration):
        if ms is not None and np.any(ms.elements == element):
            sel = ms.elements == element
            c = calibration[element]
            ref = calibrated_shift(np.trace(ms.reference[sel], axis1=1, axis2=2) / 3, c["slope"], c["sigma_ref"])
            pred = calibrated_shift(np.trace(ms.predicted[sel], axis1=1, axis2=2) / 3, c["slope"], c["sigma_ref"])
            axes[0].plot(ref, pred, "o", ms=4, label=element)
        if efg is not None and np.any(efg.elements == element):
            sel = efg.elements == element
            ref = quadrupolar_parameters(efg.reference[sel], isotopes[element]).cq
            pred = quadrupolar_parameters(efg.predicted[sel], isotopes[element]).cq
            axes[1].plot(ref, pred, "o", ms=4, label=f"{isotopes[element]}")
    for ax, what in zip(axes, ("δiso / ppm", "CQ / MHz")):
        low, high = ax.get_xlim()
        ax.plot([low, high], [low, high], "k-", lw=0.6)
        ax.set_xlabel(f"DFT {what}"), ax.set_ylabel(f"model {what}"), ax.legend(fontsize=8)
        ax.set_title(f"held-out crystals: {what.split(' ')[0]}")
    return save_figure(fig, path)


def plot_correlations(tables: Mapping[str, Mapping], plateaus: Mapping[str, Mapping[str, dict]], path: Path) -> Path:
    """G_EFG(s) per element from each source (label → ``read_result`` tables), with the
    plateau window and P of each source marked."""
    elements = sorted({element for t in tables.values() for (element, channel) in t if channel == "efg"})
    fig, axes = figure(max(1, len(elements)))
    for ax, element in zip(axes, elements):
        for label, table in tables.items():
            if (element, "efg") not in table:
                continue
            rows = table[(element, "efg")]
            lags, g = rows["lag_fs"], rows["g"]
            line, = ax.semilogx(np.maximum(lags, 0.5), g, lw=1.0, label=f"{label}")
            entry = plateaus[label].get(element, {})
            if entry.get("P") is not None:
                start, end = entry["window_fs"]
                ax.hlines(entry["P"], start, end, colors=line.get_color(), linestyles="--",
                          label=f"{label}: P = {entry['P']:.3f}, √P = {entry['cq_scale']:.3f}")
        ax.set_xlabel("lag s / fs (log; s = 0 drawn at 0.5 fs)"), ax.set_ylabel("G_EFG(s)")
        ax.set_ylim(min(0.0, ax.get_ylim()[0]), 1.05), ax.set_title(f"{element}: EFG time correlation")
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def plot_distributions(values: Mapping[str, Mapping[str, np.ndarray]], path: Path) -> Path:
    """Histograms of δiso, |CQ| and η per element (``values[element][quantity]``)."""
    quantities = (("delta_iso_ppm", "δiso / ppm"), ("cq_MHz", "|CQ| / MHz"), ("eta_q", "η"))
    fig, axes = figure(3)
    for ax, (key, label) in zip(axes, quantities):
        for element, per in values.items():
            data = np.abs(per[key]) if key == "cq_MHz" else per[key]
            data = data[np.isfinite(data)]
            if data.size:
                ax.hist(data, bins=30, alpha=0.6, label=f"{element} ({data.size} sites)")
        ax.set_xlabel(label), ax.set_ylabel("sites"), ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_spectra_panels(spectra: Iterable, path: Path) -> Path:
    """One panel per simulated spectrum: frozen EFG and, when present, |CQ| × √P."""
    from ..spectra.plotting import plot_spectra

    spectra = list(spectra)
    fig, axes = figure(len(spectra))
    for ax, s in zip(axes, spectra):
        shown, labels = [s.frozen], ["frozen EFG"]
        if s.scaled is not None:
            shown.append(s.scaled), labels.append(f"|CQ| × {s.cq_scale:.3f} (vibrational)")
        plot_spectra(shown, labels, ax=ax, title=f"{s.isotope} {s.experiment}, {s.frozen.info['b0_tesla']:g} T")
    return save_figure(fig, path)


def plot_mqmas_panels(spectrum, b0_tesla: float, path: Path) -> Path:
    """Contour plots of one sheared 3QMAS spectrum (``DemoSpectrum2D``; F1 the AF isotropic
    axis, F2 MAS, both in ppm): frozen EFG and, when present, |CQ| × √P."""
    from ..spectra.plotting import plot_mqmas

    panels = [("frozen EFG", spectrum.frozen)]
    if spectrum.scaled is not None:
        panels.append((f"|CQ| × {spectrum.cq_scale:.3f} (vibrational)", spectrum.scaled))
    fig, axes = figure(len(panels), width=max(4.6, 8.5 / len(panels)), height=4.2)
    for ax, (label, z) in zip(axes, panels):
        plot_mqmas(spectrum.ppm, spectrum.ppm, z, ax=ax, title=f"{spectrum.isotope} 3QMAS, {b0_tesla:g} T: {label}")
    return save_figure(fig, path)


def plot_ood(scores: Mapping[str, np.ndarray], threshold: float, path: Path) -> Path:
    """Histogram of out-of-domain scores per element and the fraction above the threshold."""
    fig, axes = figure(2)
    fractions = {}
    for element, s in scores.items():
        axes[0].hist(s, bins=40, range=(0, 1), alpha=0.6, label=element)
        fractions[element] = float(np.mean(s > threshold))
    axes[0].axvline(threshold, color="k", ls="--", lw=0.8, label=f"threshold {threshold:g}")
    axes[0].set_xlabel("out-of-domain score"), axes[0].set_ylabel("atoms"), axes[0].legend(fontsize=8)
    axes[1].bar(list(fractions), [100 * f for f in fractions.values()], color="0.5")
    axes[1].set_ylabel(f"% of atoms with score > {threshold:g}"), axes[1].set_ylim(0, 100)
    axes[1].set_title("glass atoms outside the training domain")
    return save_figure(fig, path)


def summary_table(files: Mapping[str, str], output: Path) -> str:
    """Plain-text table: every file written (path relative to ``output``) and what it holds."""
    width = max(len(str(Path(p).relative_to(output))) for p in files) if files else 4
    lines = [DISCLAIMER, "", f"{'file'.ljust(width)}  content", f"{'-' * width}  {'-' * 40}"]
    lines += [f"{str(Path(p).relative_to(output)).ljust(width)}  {what}" for p, what in files.items()]
    return "\n".join(lines)
