"""²⁷Al MAS, ¹⁷O MAS and ¹⁷O 3QMAS (isotropic projection) of the glass, with and without
the vibrational scaling |CQ| → √P·|CQ| (docs/spectra.md, "Vibrational scaling")."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..nmr.efg import quadrupolar_induced_shift, quadrupolar_product
from ..spectra import PPMAxis, Sites, Spectrometer, simulate_spectrum
from ..spectra.simulate import Spectrum

__all__ = ["B0_TESLA", "EXPERIMENTS", "DemoSpectrum", "spectrum_window", "simulate_demo_spectra"]

#: Field of every demo spectrum (600 MHz ¹H).
B0_TESLA = 14.1
#: (name, isotope, experiment) of the demo spectra.
EXPERIMENTS = (("al27_mas", "27Al", "mas"), ("o17_mas", "17O", "mas"), ("o17_3qmas_iso", "17O", "3qmas-iso"))
POINTS = 2048


@dataclass
class DemoSpectrum:
    """One simulated spectrum: ``frozen`` (predicted EFG as is) and ``scaled`` (|CQ| × cq_scale)."""

    name: str
    isotope: str
    experiment: str
    cq_scale: float
    frozen: Spectrum
    scaled: Spectrum


def spectrum_window(sites: Sites, spectrometer: Spectrometer, margin_ppm: float = 40.0) -> tuple[float, float]:
    """ppm range holding every site's line: from min(δiso + 4·δQIS) (δQIS < 0: the MAS
    central-transition line reaches a few δQIS below δiso) to max(δiso − δQIS) (the 3QMAS
    isotropic position δiso − (10/17)δQIS lies above δiso), plus a margin, so the
    area-normalised spectrum loses nothing at the edges."""
    qis = quadrupolar_induced_shift(quadrupolar_product(sites.cq_MHz, sites.eta_q), sites.isotope.name,
                                    spectrometer.b0_tesla)
    low = float(np.min(sites.delta_iso_ppm + 4.0 * np.atleast_1d(qis))) - margin_ppm
    high = float(np.max(sites.delta_iso_ppm - np.atleast_1d(qis))) + margin_ppm
    return low, high


def simulate_demo_spectra(sites_of: dict[str, Sites], cq_scale: dict[str, float],
                          progress: bool = False) -> list[DemoSpectrum]:
    """Spectra of :data:`EXPERIMENTS` (KDE route, Scott bandwidth). ``sites_of``: per
    isotope name; ``cq_scale``: per isotope name, the factor √P of its element."""
    out = []
    for name, isotope, experiment in EXPERIMENTS:
        sites = sites_of[isotope]
        spectrometer = Spectrometer(isotope, B0_TESLA)
        axis = PPMAxis.from_range(*spectrum_window(sites, spectrometer), POINTS)
        frozen = simulate_spectrum(sites, spectrometer, axis, experiment, progress=progress)
        scaled = simulate_spectrum(sites, spectrometer, axis, experiment, cq_scale=cq_scale[isotope],
                                   progress=progress)
        out.append(DemoSpectrum(name, isotope, experiment, cq_scale[isotope], frozen, scaled))
    return out
