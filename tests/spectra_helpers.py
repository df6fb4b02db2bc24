"""Shared set-up of the spectra tests: where the reference lineshapes are, small grids."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import shared_dir

from ase_mlnmr.spectra import PPMAxis, Sites, Spectrometer
from ase_mlnmr.spectra.simulate import GridSettings

#: Small grid for tests: coarser α/y tables than the default (accuracy in docs/spectra.md).
TEST_GRID = GridSettings(cq_step_MHz=0.05, eta_step=0.05, n_alpha=256, n_y=8192)


def l1_half(a: np.ndarray, b: np.ndarray, step: float) -> float:
    """Σ|a − b|·step/2 of two area-normalised spectra (independent of the package's helper)."""
    a = a / (a.sum() * step)
    b = b / (b.sum() * step)
    return 0.5 * float(np.abs(a - b).sum() * step)


def lineshape_dir():
    path = shared_dir() / "reference" / "lineshapes"
    if not (path / "cases.json").is_file():
        pytest.skip(f"reference lineshapes {path} are absent")
    return path


def load_case(case_id: str):
    """(case dict, spectrometer, axis, reference (n, 2) array, sites) of one reference case."""
    folder = lineshape_dir()
    cases = {c["id"]: c for c in json.loads((folder / "cases.json").read_text())["cases"]}
    case = cases[case_id]
    dim = case["spectral_dimension"]
    spectrometer = Spectrometer(case["isotope"], case["B0_T"])
    axis = PPMAxis.from_spectrometer(dim["count"], dim["spectral_width_Hz"], dim["reference_offset_Hz"],
                                     spectrometer.nu_ref_Hz)
    reference = np.loadtxt(folder / case["file"], delimiter=",", skiprows=1)
    if "sites_file" in case:
        table = np.loadtxt(folder / case["sites_file"], delimiter=",", skiprows=1)
        sites = Sites(case["isotope"], table[:, 0], table[:, 1] / 1e6, table[:, 2])
    elif case["csa"]:
        sites = Sites(case["isotope"], [case["delta_iso_ppm"]], csa_zeta_ppm=[case["csa"]["zeta_delta_ppm"]],
                      csa_eta=[case["csa"]["eta"]])
    else:
        sites = Sites(case["isotope"], [case["delta_iso_ppm"]], [case["Cq_Hz"] / 1e6], [case["eta"]])
    return case, spectrometer, axis, reference, sites
