"""Accuracy of the CT lineshape grid and powder average: L1 (Σ|Δ|·step/2, area-normalised)
of single-site spectra against the exact per-site route, at random off-node (CQ, η), for
grid steps and powder-table sizes, with δiso between bin centres (random) and on a bin
centre (isolates the (CQ, η) interpolation from the split of δ over two lattice points).
Prints a Markdown table (docs/spectra.md).

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
        deltas = {"random": rng.uniform(-5, 5, len(points)), "on bin": axis.ppm[axis.count // 2 + np.arange(len(points))]}
        exact = {k: [simulate_spectrum(Sites("23Na", [d], [c], [e]), spectrometer, axis, mode, route="sites").intensity
                     for d, (c, e) in zip(ds, points)] for k, ds in deltas.items()}
        for n_alpha, n_y in ((256, 8192), (512, 16384)):
            for cq_step, eta_step in ((0.1, 0.1), (0.05, 0.05), (0.025, 0.05), (0.025, 0.025)):
                settings = GridSettings(cq_step, eta_step, n_alpha, n_y)
                cells = []
                for key, ds in deltas.items():
                    l1 = [l1_distance(simulate_spectrum(Sites("23Na", [d], [c], [e]), spectrometer, axis, mode,
                                                        route="grid", grid_settings=settings).intensity, ex,
                                      axis.step_ppm) for d, (c, e), ex in zip(ds, points, exact[key])]
                    cells.append(f"{100 * np.mean(l1):.2f} / {100 * np.max(l1):.2f}")
                rows.append(cells)
                print(f"| {mode} | {n_alpha}, {n_y} | {cq_step}, {eta_step} | {cells[0]} | {cells[1]} |", flush=True)


if __name__ == "__main__":
    main()
