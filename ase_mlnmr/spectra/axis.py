"""Frequency axes in ppm and the spectrometer field.

The ppm axis is defined by the isotope's IUPAC reference frequency ν_ref (Ξ scale,
:func:`ase_mlnmr.nmr.reference_frequency`): ``δ = (ν − ν_ref)/ν_ref·1e6``. The
second-order quadrupolar terms use the bare-γ Larmor frequency ν0 = |γ/2π|·B0
(:func:`ase_mlnmr.nmr.larmor_frequency`); a frequency offset Δν (Hz) is Δν/ν_ref·1e6 ppm.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..nmr.efg import field_from_proton_frequency, larmor_frequency, reference_frequency
from ..nmr.isotopes import Isotope, IsotopeLike, get_isotope

__all__ = ["PPMAxis", "Spectrometer"]


@dataclass(frozen=True)
class PPMAxis:
    """Uniform axis of ``count`` bin centres ``start_ppm + i·step_ppm`` (ascending).

    Spectra on an axis are bin integrals divided by the step: intensity per ppm.
    """

    start_ppm: float
    step_ppm: float
    count: int

    def __post_init__(self) -> None:
        if not (np.isfinite(self.start_ppm) and np.isfinite(self.step_ppm) and self.step_ppm > 0):
            raise ValueError(f"a ppm axis needs a finite start and a positive step, got {self.start_ppm}, {self.step_ppm}")
        if int(self.count) < 2:
            raise ValueError(f"a ppm axis needs at least 2 points, got {self.count}")
        object.__setattr__(self, "count", int(self.count))

    @classmethod
    def from_range(cls, low_ppm: float, high_ppm: float, count: int) -> "PPMAxis":
        """``count`` bin centres spanning [low, high] (ppm, both included)."""
        if not high_ppm > low_ppm:
            raise ValueError(f"ppm range must be increasing, got {low_ppm} .. {high_ppm}")
        return cls(float(low_ppm), (high_ppm - low_ppm) / (count - 1), count)

    @classmethod
    def from_spectrometer(cls, count: int, spectral_width_Hz: float, reference_offset_Hz: float,
                          nu_ref_Hz: float) -> "PPMAxis":
        """The axis of a spectrometer window: ``ppm_i = ((i − count/2)·SW/count + offset)/ν_ref·1e6``."""
        step_hz = spectral_width_Hz / count
        start_hz = -count / 2 * step_hz + reference_offset_Hz
        return cls(start_hz / nu_ref_Hz * 1e6, step_hz / nu_ref_Hz * 1e6, count)

    @property
    def ppm(self) -> np.ndarray:
        """Bin centres (ppm)."""
        return self.start_ppm + self.step_ppm * np.arange(self.count)

    @property
    def edges(self) -> np.ndarray:
        """count + 1 bin edges (ppm)."""
        return self.start_ppm + self.step_ppm * (np.arange(self.count + 1) - 0.5)

    def index_of(self, ppm) -> np.ndarray:
        """Fractional bin index of ppm values."""
        return (np.asarray(ppm, dtype=float) - self.start_ppm) / self.step_ppm


@dataclass(frozen=True)
class Spectrometer:
    """Isotope and field: ``b0_tesla`` (T), or ``Spectrometer.from_proton_frequency``.

    ``nu0_Hz`` = |γ/2π|·B0 (bare γ, used in the second-order quadrupolar terms);
    ``nu_ref_Hz`` = Ξ-scale reference frequency (defines ppm).
    """

    isotope: Isotope
    b0_tesla: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "isotope", get_isotope(self.isotope))
        b0 = float(self.b0_tesla)
        if not (np.isfinite(b0) and b0 > 0):
            raise ValueError(f"B0 must be a positive number of tesla, got {self.b0_tesla!r}")
        object.__setattr__(self, "b0_tesla", b0)

    @classmethod
    def from_proton_frequency(cls, isotope: IsotopeLike, nu_1h_MHz: float) -> "Spectrometer":
        """Field from the magnet's 1H Larmor frequency in MHz (e.g. 500)."""
        return cls(get_isotope(isotope), field_from_proton_frequency(nu_1h_MHz))

    @property
    def nu0_Hz(self) -> float:
        return float(larmor_frequency(self.isotope, self.b0_tesla)) * 1e6

    @property
    def nu_ref_Hz(self) -> float:
        return float(reference_frequency(self.isotope, self.b0_tesla)) * 1e6

    def hz_to_ppm(self, hz):
        """Frequency offset (Hz) → ppm of the reference frequency."""
        return np.asarray(hz, dtype=float) / self.nu_ref_Hz * 1e6
