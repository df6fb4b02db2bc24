"""Plots of spectra (matplotlib): ppm axes decrease to the right, as NMR spectra are
drawn; a measured spectrum can be overlaid on any plot."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .mqmas import IDEAL_EXCITATION_NOTE

__all__ = ["plot_spectra", "plot_stacked", "plot_mqmas"]


def _measured_scaled(measured, ppm: np.ndarray, reference: np.ndarray):
    """Measured (ppm, intensity) scaled to the area of ``reference`` over the overlap."""
    mppm, mint = (np.asarray(v, dtype=float) for v in measured)
    lo, hi = max(ppm.min(), mppm.min()), min(ppm.max(), mppm.max())
    inside = (mppm >= lo) & (mppm <= hi)
    ref_inside = (ppm >= lo) & (ppm <= hi)
    area_m = abs(np.trapezoid(mint[inside], mppm[inside])) if inside.sum() > 1 else 0.0
    area_r = abs(np.trapezoid(reference[ref_inside], ppm[ref_inside])) if ref_inside.sum() > 1 else 0.0
    scale = area_r / area_m if area_m > 0 and area_r > 0 else 1.0
    return mppm, mint * scale


def _figure(ax):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
    else:
        fig = ax.figure
    return fig, ax


def plot_spectra(spectra: Sequence, labels: Sequence[str] | None = None, measured=None, ax=None,
                 title: str | None = None, note: str | None = None, path: str | Path | None = None):
    """Overlay 1D spectra (objects with ``ppm`` and ``intensity``); ``measured`` = (ppm,
    intensity) drawn as dots, scaled to the first spectrum's area over the common range."""
    fig, ax = _figure(ax)
    labels = labels or [None] * len(spectra)
    for spectrum, label in zip(spectra, labels):
        ax.plot(spectrum.ppm, spectrum.intensity, lw=1.0, label=label)
    if measured is not None and spectra:
        mppm, mint = _measured_scaled(measured, spectra[0].ppm, spectra[0].intensity)
        ax.plot(mppm, mint, ".", ms=2, color="k", label="measured")
    _finish(ax, title, note, any(labels) or measured is not None)
    return _save(fig, path)


def plot_stacked(spectra: Sequence, labels: Sequence[str], measured=None, ax=None, gap: float = 0.15,
                 title: str | None = None, path: str | Path | None = None):
    """Spectra stacked vertically (e.g. MAS with and without vibrational CQ scaling),
    each with the measured spectrum overlaid when given."""
    fig, ax = _figure(ax)
    top = max(float(np.max(s.intensity)) for s in spectra)
    for k, (spectrum, label) in enumerate(zip(spectra, labels)):
        offset = k * top * (1.0 + gap)
        ax.plot(spectrum.ppm, spectrum.intensity + offset, lw=1.0, label=label)
        ax.text(spectrum.ppm.max(), offset + 0.5 * top, label, ha="left", va="center", fontsize=8)
        if measured is not None:
            mppm, mint = _measured_scaled(measured, spectrum.ppm, spectrum.intensity)
            ax.plot(mppm, mint + offset, ".", ms=2, color="k", label="measured" if k == 0 else None)
    ax.set_yticks([])
    _finish(ax, title, None, True)
    return _save(fig, path)


def plot_mqmas(ppm_f2: np.ndarray, ppm_f1: np.ndarray, intensity: np.ndarray, ax=None, levels: int = 12,
               title: str | None = None, measured=None, path: str | Path | None = None):
    """Contour plot of a sheared 3QMAS spectrum (F1 = AF isotropic axis, vertical), both
    axes decreasing, with the ideal-excitation caveat on the plot. ``measured`` = (ppm,
    intensity) of a measured 1D (MAS) spectrum: drawn with the simulated F2 projection in a
    panel above the contours."""
    fig, ax = _figure(ax)
    z = np.asarray(intensity, dtype=float)
    top = float(z.max()) if z.size else 0.0
    if top > 0:
        ax.contour(ppm_f2, ppm_f1, z, levels=np.geomspace(top * 0.02, top, levels), linewidths=0.7, cmap="viridis")
    ax.invert_yaxis()
    ax.set_ylabel("δF1 / ppm (Amoureux–Fernandez)")
    _finish(ax, title if measured is None else None, IDEAL_EXCITATION_NOTE, False)
    if measured is not None:
        from mpl_toolkits.axes_grid1 import make_axes_locatable

        upper = make_axes_locatable(ax).append_axes("top", size="25%", pad=0.05, sharex=ax)
        projection = z.sum(axis=0)
        step = abs(float(ppm_f2[1] - ppm_f2[0]))
        projection = projection / max(projection.sum() * step, 1e-300)
        upper.plot(ppm_f2, projection, lw=1.0, label="F2 projection")
        mppm, mint = _measured_scaled(measured, np.asarray(ppm_f2), projection)
        upper.plot(mppm, mint, ".", ms=2, color="k", label="measured")
        upper.set_yticks([])
        upper.tick_params(labelbottom=False)
        upper.legend(fontsize=7, frameon=False)
        if title:
            upper.set_title(title)
    return _save(fig, path)


def _finish(ax, title, note, legend: bool) -> None:
    ax.set_xlabel("δ / ppm")
    if not ax.xaxis_inverted():
        ax.invert_xaxis()
    if title:
        ax.set_title(title)
    if note:
        ax.text(0.01, 0.99, note, transform=ax.transAxes, ha="left", va="top", fontsize=7, color="0.3")
    if legend:
        ax.legend(fontsize=8, frameon=False)


def _save(fig, path):
    if path is not None:
        fig.tight_layout()
        fig.savefig(path, dpi=150)
        import matplotlib.pyplot as plt

        plt.close(fig)
        return Path(path)
    return fig
