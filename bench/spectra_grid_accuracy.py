"""Accuracy of the CT lineshape grid and powder average: L1 (Σ|Δ|·step/2, area-normalised)
of single-site spectra against the exact per-site route, at random off-node (CQ, η), for
grid steps and powder-table sizes. Prints a Markdown table (docs/spectra.md).

    PYTHONPATH=. python bench/spectra_grid_accuracy.py
"""
from __future__ import annotations

import os
import time

import numpy as np

from ase_mlnmr.spectra import PPMAxis, Sites, Spectrometer, simulate_spectrum
from ase_mlnmr.spectra.simulate import GridSettings, l1_distance


def main() -> None:
    rng = np.random.default_rng(7)
    spectrometer = Spectrometer("23Na", 11.7)
    points = [(float(c), float(e)) for c, e in zip(rng.uniform(0.8, 4.0, 12), rng.uniform(0.0, 1.0, 12))]
    rows = []
    for mode, axis in (("mas", PPMAxis.from_range(-90, 30, 4096)), ("static", PPMAxis.from_range(-250, 100, 4096))):
        exact = [simulate_spectrum(Sites("23Na", [0.0], [c], [e]), spectrometer, axis, mode, route="sites").intensity
                 for c, e in points]
        for n_alpha, n_y in ((256, 8192), (512, 16384)):
            for cq_step, eta_step in ((0.1, 0.1), (0.05, 0.05), (0.025, 0.05), (0.025, 0.025)):
                settings = GridSettings(cq_step, eta_step, n_alpha, n_y)
                t = time.process_time()
                l1 = [l1_distance(simulate_spectrum(Sites("23Na", [0.0], [c], [e]), spectrometer, axis, mode,
                                                    route="grid", grid_settings=settings).intensity, ex,
                                  axis.step_ppm) for (c, e), ex in zip(points, exact)]
                rows.append((mode, n_alpha, n_y, cq_step, eta_step, np.mean(l1), np.max(l1),
                             time.process_time() - t))
                print(f"| {mode} | {n_alpha} | {n_y} | {cq_step} | {eta_step} | {100 * np.mean(l1):.2f} | "
                      f"{100 * np.max(l1):.2f} |", flush=True)


if __name__ == "__main__":
    main()
