"""Ensemble MAS CT spectrum of 14 400 distinct 23Na sites: mrsimulator 1.0.0 per site vs our
grid route (bandwidth → 0) and KDE route, side by side in one process (CPU time,
time.process_time, one thread).

Sites: the recipe of the ``dev5`` case of ``cases.json`` (Czjzek EFG, δiso ~ N(0, 4) ppm,
mean |CQ| 2 MHz, rounding as there) with n = 14 400 and its seed. Axis: the dev5 window.

    PYTHONPATH=. python bench/bench_spectra.py [--mrsim-subset N]
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_report import machine_report  # noqa: E402

from ase_mlnmr.nmr import efg_principal_components  # noqa: E402
from ase_mlnmr.spectra import PPMAxis, Sites, Spectrometer  # noqa: E402
from ase_mlnmr.spectra.grid import LineshapeGrid, NormalisedCTTable, site_node_weights  # noqa: E402
from ase_mlnmr.spectra.kde import kde_node_weights  # noqa: E402
from ase_mlnmr.spectra.simulate import KDE_GRID, SITE_GRID, GridSettings, l1_distance  # noqa: E402

SEED = 20251121
B0, COUNT, WIDTH, OFFSET = 11.7, 4096, 16000.0, -3600.0


def dev5_recipe_sites(n: int, seed: int = SEED) -> Sites:
    """The dev5 recipe (cases.json) with n sites."""
    rng = np.random.default_rng(seed)
    delta = rng.normal(0, 4, n)
    m = rng.normal(size=(n, 3, 3))
    v = (m + np.swapaxes(m, 1, 2)) / 2 - np.trace(m, axis1=1, axis2=2)[:, None, None] / 3 * np.eye(3)
    principal = efg_principal_components(v)
    cq_raw = np.abs(principal.vzz)
    cq = cq_raw * 2.0e6 / cq_raw.mean()
    return Sites("23Na", np.round(delta, 4), np.round(cq) / 1e6, np.round(principal.eta, 5))


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def mrsim_spectrum(sites: Sites, density: int) -> tuple[np.ndarray, float]:
    from mrsimulator import Simulator, SpinSystem, Site
    from mrsimulator.method.lib import BlochDecayCTSpectrum
    from mrsimulator.spin_system.tensors import SymmetricTensor

    systems = [SpinSystem(sites=[Site(isotope="23Na", isotropic_chemical_shift=float(d),
                                      quadrupolar=SymmetricTensor(Cq=float(c) * 1e6, eta=float(e)))])
               for d, c, e in zip(sites.delta_iso_ppm, sites.cq_MHz, sites.eta_q)]
    method = BlochDecayCTSpectrum(channels=["23Na"], magnetic_flux_density=B0, rotor_frequency=np.inf,
                                  spectral_dimensions=[dict(count=COUNT, spectral_width=WIDTH,
                                                            reference_offset=OFFSET)])
    sim = Simulator(spin_systems=systems, methods=[method])
    sim.config.integration_density = density
    sim.config.integration_volume = "hemisphere"
    t = time.process_time()
    sim.run()
    cpu = time.process_time() - t
    return np.asarray(sim.methods[0].simulation.y[0].components[0].real, dtype=float), cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=14400)
    parser.add_argument("--mrsim-subset", type=int, default=0, help="time mrsimulator on N sites and extrapolate")
    parser.add_argument("--density-sites", type=int, default=300, help="sites used to pick the density")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    load = {"start": uptime()}
    sites = dev5_recipe_sites(args.n)
    spectrometer = Spectrometer("23Na", B0)
    axis = PPMAxis.from_spectrometer(COUNT, WIDTH, OFFSET, spectrometer.nu_ref_Hz)
    step = axis.step_ppm
    result: dict = {"n_sites": len(sites)}

    # 1. lowest mrsimulator density within 0.5 % L1 of density 256 (on a subset)
    probe = sites.subset(np.arange(args.density_sites))
    ref256, _ = mrsim_spectrum(probe, 256)
    density_l1 = {}
    chosen = 256
    for density in (8, 12, 16, 24, 32, 48, 64, 96, 128):
        y, _ = mrsim_spectrum(probe, density)
        density_l1[density] = l1_distance(y, ref256, step)
        print(f"density {density}: L1 vs 256 = {100 * density_l1[density]:.3f} %", flush=True)
        if density_l1[density] <= 0.005:
            chosen = density
            break
    result["density_search"] = {"sites": args.density_sites, "l1_vs_256": density_l1, "chosen": chosen}

    # 2. one-off costs of the grids (fresh tables, no cache) and lineshape matrices: the grid
    #    route's default (SITE_GRID, CQ nodes adapted to the lineshape) and the KDE's (KDE_GRID)
    def build(settings: GridSettings, first_weights) -> tuple[LineshapeGrid, dict]:
        with tempfile.TemporaryDirectory() as cache:
            t0 = time.process_time()
            table = NormalisedCTTable("mas", settings.eta_step, settings.n_alpha, settings.n_y, cache=cache)
            t_table = time.process_time() - t0
        t0 = time.process_time()
        g = LineshapeGrid(table, spectrometer, step, float(np.ceil(sites.abs_cq_MHz.max() + 1.0)),
                          settings.cq_step_MHz, settings.cq_relative_step)
        t_grid = time.process_time() - t0
        t0 = time.process_time()
        weights, sd = first_weights(g)
        g.spectrum(weights, axis, gaussian_sd_ppm=sd)
        t_first = time.process_time() - t0
        return g, {"normalised_tables": t_table, "lineshape_matrix": t_grid,
                   "first_spectrum_incl_lineshape_ffts": t_first, "n_nodes": g.n_nodes,
                   "settings": settings.__dict__}

    grid, result["grid_one_off_cpu_s"] = build(SITE_GRID, lambda g: (site_node_weights(sites, g, axis), 0.0))
    kde_grid, result["kde_grid_one_off_cpu_s"] = build(KDE_GRID, lambda g: kde_node_weights(sites, g, axis)[:2])

    # 3. side by side: ours (grid, KDE), mrsimulator, ours again
    def ours_grid():
        t0 = time.process_time()
        y = grid.spectrum(site_node_weights(sites, grid, axis), axis)
        return y, time.process_time() - t0

    def ours_kde():
        t0 = time.process_time()
        weights, sd, _ = kde_node_weights(sites, kde_grid, axis)
        y = kde_grid.spectrum(weights, axis, gaussian_sd_ppm=sd)
        return y, time.process_time() - t0

    grid_times, kde_times = [], []
    for _ in range(args.reps):
        y_grid, tg = ours_grid()
        grid_times.append(tg)
        y_kde, tk = ours_kde()
        kde_times.append(tk)
    subset = sites if not args.mrsim_subset else sites.subset(np.arange(args.mrsim_subset))
    y_mrsim, t_mrsim = mrsim_spectrum(subset, chosen)
    t_mrsim_full = t_mrsim * len(sites) / len(subset)
    for _ in range(args.reps):
        y_grid, tg = ours_grid()
        grid_times.append(tg)
    load["end"] = uptime()
    result["mrsimulator"] = {"density": chosen, "sites_timed": len(subset), "cpu_s": t_mrsim,
                             "cpu_s_for_all_sites": t_mrsim_full, "extrapolated": len(subset) != len(sites)}
    result["grid_route"] = {"cpu_s_best": min(grid_times), "cpu_s_all": grid_times,
                            "speedup_vs_mrsim": t_mrsim_full / min(grid_times)}
    result["kde_route"] = {"cpu_s_best": min(kde_times), "cpu_s_all": kde_times}
    if len(subset) == len(sites):
        result["grid_route"]["l1_vs_mrsim"] = l1_distance(y_grid, y_mrsim, step)
        result["kde_route"]["l1_vs_mrsim"] = l1_distance(y_kde, y_mrsim, step)
    result["machine"] = machine_report(["numpy", "scipy", "mrsimulator"], load=load, threads=1)
    print(json.dumps(result, indent=1, default=float))
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"bench_spectra_{time.strftime('%Y%m%dT%H%M%S')}.json").write_text(json.dumps(result, indent=1,
                                                                                       default=float))


if __name__ == "__main__":
    main()
