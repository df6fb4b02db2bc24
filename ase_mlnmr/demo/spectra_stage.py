"""²⁷Al MAS, ¹⁷O MAS, the ¹⁷O 3QMAS isotropic projection and the sheared 2D ¹⁷O and ²⁷Al
3QMAS spectra (F1 the Amoureux–Fernandez isotropic axis, F2 MAS) of the glass, with and
without the vibrational scaling |CQ| → √P·|CQ| (docs/spectra.md, "Vibrational scaling")."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..nmr.efg import quadrupolar_induced_shift, quadrupolar_product
from ..spectra import PPMAxis, Sites, Spectrometer, simulate_mqmas_2d, simulate_spectrum
from ..spectra.simulate import Spectrum

__all__ = ["B0_TESLA", "EXPERIMENTS", "MQMAS_2D", "DemoSpectrum", "DemoSpectrum2D", "spectrum_window",
           "simulate_demo_spectra", "simulate_demo_2d_spectra"]

#: Field of every demo spectrum (600 MHz ¹H).
B0_TESLA = 14.1
#: (name, isotope, experiment) of the demo spectra.
EXPERIMENTS = (("al27_mas", "27Al", "mas"), ("o17_mas", "17O", "mas"), ("o17_3qmas_iso", "17O", "3qmas-iso"))
POINTS = 2048
#: (name, isotope) of the sheared 2D 3QMAS spectra, and their points per dimension
MQMAS_2D = (("o17_3qmas_2d", "17O"), ("al27_3qmas_2d", "27Al"))
POINTS_2D = 384


@dataclass
class DemoSpectrum:
    """One simulated spectrum: ``frozen`` (predicted EFG as is) and ``scaled`` (|CQ| × cq_scale)."""

    name: str
    isotope: str
    experiment: str
    cq_scale: float
    frozen: Spectrum
    scaled: Spectrum


@dataclass
class DemoSpectrum2D:
    """One sheared 3QMAS spectrum I[F1, F2] (per ppm², unit volume) on ``ppm`` (both
    dimensions): ``frozen`` and ``scaled`` (|CQ| × cq_scale, or None)."""

    name: str
    isotope: str
    cq_scale: float
    ppm: np.ndarray
    frozen: np.ndarray
    scaled: np.ndarray | None

    def to_npz(self, folder: Path) -> list[Path]:
        """``<name>_frozen.npz`` (and ``_scaled``) with ppm_f2, ppm_f1 and intensity[F1, F2],
        the layout of ``ase-mlnmr spectrum --experiment 3qmas``."""
        written = []
        for kind, z in (("frozen", self.frozen), ("scaled", self.scaled)):
            if z is not None:
                path = folder / f"{self.name}_{kind}.npz"
                np.savez_compressed(path, ppm_f2=self.ppm, ppm_f1=self.ppm, intensity=z)
                written.append(path)
        return written


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


def simulate_demo_2d_spectra(sites_of: dict[str, Sites], cq_scale: dict[str, float] | None) -> list[DemoSpectrum2D]:
    """Sheared 2D 3QMAS spectra of :data:`MQMAS_2D` (KDE route, Scott bandwidth) on a
    :data:`POINTS_2D`-point window shared by F1 and F2; ``cq_scale`` None: frozen only."""
    out = []
    for name, isotope in MQMAS_2D:
        sites = sites_of[isotope]
        spectrometer = Spectrometer(isotope, B0_TESLA)
        axis = PPMAxis.from_range(*spectrum_window(sites, spectrometer), POINTS_2D)
        scale = 1.0 if cq_scale is None else cq_scale[isotope]
        frozen = simulate_mqmas_2d(sites, spectrometer, axis)
        scaled = None if cq_scale is None else simulate_mqmas_2d(sites, spectrometer, axis, cq_scale=scale)
        out.append(DemoSpectrum2D(name, isotope, scale, axis.ppm, frozen, scaled))
    return out
