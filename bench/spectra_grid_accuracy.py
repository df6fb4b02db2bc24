"""Accuracy of the CT lineshape grid: L1 (Σ|Δ|·step/2, area-normalised) of single-site
spectra, grid route against the exact per-site route, at random off-node (|CQ|, η, δiso)
(fixed seed), MAS and static, I = 3/2 (23Na) and 5/2 (27Al) at 11.7 T, for several grid
settings, over the documented domain (η ≥ 0.05, lines 60–3000 bins wide); then the default
grid's L1 outside it: narrow lines (by width in bins) and η < 0.05. Prints Markdown tables
(docs/spectra.md).

    PYTHONPATH=. python bench/spectra_grid_accuracy.py [--n 40]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from ase_mlnmr.spectra import PPMAxis, Sites, Spectrometer, simulate_spectrum
from ase_mlnmr.spectra.central_transition import ct_prefactor_ppm
from ase_mlnmr.spectra.simulate import KDE_GRID, SITE_GRID, GridSettings, l1_distance

B0 = 11.7
#: (isotope, mode, axis); the lines fit inside the window
CASES = (("23Na", "mas", PPMAxis.from_range(-90, 30, 4096)),
         ("23Na", "static", PPMAxis.from_range(-250, 100, 4096)),
         ("27Al", "mas", PPMAxis.from_range(-110, 40, 4096)),
         ("27Al", "static", PPMAxis.from_range(-300, 120, 4096)))
SETTINGS = (("uniform ΔCQ 0.05 MHz, Δη 0.05 (KDE_GRID, the old default)", KDE_GRID),
            ("adapted r 0.0125, Δη 0.05", GridSettings(eta_step=0.05, cq_relative_step=0.0125)),
            ("adapted r 0.0125, Δη 0.025 (SITE_GRID)", SITE_GRID))
#: documented domain of the grid route (single sites): η ≥ ETA_MIN, lines WIDTH_BINS wide
ETA_MIN = 0.05
WIDTH_BINS = (60.0, 3000.0)


def line_width_bins(isotope: str, cq: float, axis: PPMAxis, mode: str) -> float:
    """Approximate CT width |P|·(range of g at η = 0) in bins (MAS 0.429, static 1.042)."""
    g_range = 3.0 / 7.0 if mode == "mas" else 25.0 / 24.0
    return abs(float(ct_prefactor_ppm(cq, Spectrometer(isotope, B0)))) * g_range / axis.step_ppm


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=40, help="random points per isotope and mode")
    args = parser.parse_args()
    rng = np.random.default_rng(2026)
    print("| isotope | mode | grid | mean L1 % | max L1 % | worst (|CQ| MHz, η, width in bins) |")
    print("|---|---|---|---|---|---|")
    t0 = time.process_time()
    for isotope, mode, axis in CASES:
        spectrometer = Spectrometer(isotope, B0)
        width = np.exp(rng.uniform(*np.log(WIDTH_BINS), args.n))
        cq = np.sqrt(width / line_width_bins(isotope, 1.0, axis, mode))
        eta = rng.uniform(ETA_MIN, 1.0, args.n)
        delta = rng.uniform(-5.0, 5.0, args.n)
        exact = [simulate_spectrum(Sites(isotope, [d], [c], [e]), spectrometer, axis, mode, route="sites").intensity
                 for d, c, e in zip(delta, cq, eta)]
        for label, settings in SETTINGS:
            l1 = np.array([l1_distance(simulate_spectrum(Sites(isotope, [d], [c], [e]), spectrometer, axis, mode,
                                                         route="grid", grid_settings=settings).intensity, ex,
                                       axis.step_ppm) for d, c, e, ex in zip(delta, cq, eta, exact)])
            i = int(np.argmax(l1))
            print(f"| {isotope} | {mode} | {label} | {100 * l1.mean():.2f} | {100 * l1.max():.2f} | "
                  f"{cq[i]:.2f}, {eta[i]:.2f}, {line_width_bins(isotope, cq[i], axis, mode):.0f} |", flush=True)
    print(f"\n(CPU {time.process_time() - t0:.0f} s)\n")
    print("| mode | line width (bins) | η | mean / max L1 % over 10 random (η, δ), SITE_GRID |")
    print("|---|---|---|---|")
    spectrometer = Spectrometer("23Na", B0)
    for _, mode, axis in CASES[:2]:
        for width, eta_range in ((5, (0.05, 1)), (10, (0.05, 1)), (20, (0.05, 1)), (40, (0.05, 1)),
                                 (60, (0.05, 1)), (100, (0.0, 0.05)), (300, (0.0, 0.05)), (1000, (0.0, 0.05))):
            cq = float(np.sqrt(width / line_width_bins("23Na", 1.0, axis, mode)))
            l1 = []
            for e, d in zip(rng.uniform(*eta_range, 10), rng.uniform(-5, 5, 10)):
                site = Sites("23Na", [d], [cq], [e])
                ex = simulate_spectrum(site, spectrometer, axis, mode, route="sites").intensity
                gr = simulate_spectrum(site, spectrometer, axis, mode, route="grid").intensity
                l1.append(l1_distance(gr, ex, axis.step_ppm))
            print(f"| {mode} | {width} ({cq:.3f} MHz) | {eta_range[0]}–{eta_range[1]} | "
                  f"{100 * np.mean(l1):.2f} / {100 * np.max(l1):.2f} |", flush=True)

if __name__ == "__main__":
    main()
