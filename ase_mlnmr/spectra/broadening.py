"""Line broadening: convolution of a spectrum on a uniform ppm axis with a Lorentzian or a
Gaussian of given full width at half maximum (FWHM, in ppm or Hz).

Done in the Fourier domain with the kernels' analytic transforms (zero-padded to twice the
length, so nothing wraps around): Lorentzian exp(−π·FWHM·|t|), Gaussian
exp(−(π·FWHM·t)²/(4 ln 2)), t the conjugate variable of ppm. Area is preserved (up to what
the kernel's tails carry outside the window).
"""
from __future__ import annotations

import numpy as np
from scipy import fft as sfft

from .axis import PPMAxis

__all__ = ["broaden", "fwhm_in_ppm"]

SHAPES = ("lorentzian", "gaussian")


def fwhm_in_ppm(fwhm: float, unit: str, nu_ref_Hz: float | None = None) -> float:
    """FWHM converted to ppm: ``unit`` "ppm" or "Hz" (Hz needs the reference frequency ν_ref)."""
    value = float(fwhm)
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"line broadening FWHM must be a non-negative number, got {fwhm!r}")
    unit_key = unit.strip().lower()
    if unit_key == "ppm":
        return value
    if unit_key == "hz":
        if not nu_ref_Hz:
            raise ValueError("a broadening in Hz needs the spectrometer's reference frequency")
        return value / nu_ref_Hz * 1e6
    raise ValueError(f"line broadening unit must be 'ppm' or 'Hz', got {unit!r}")


def broaden(intensity: np.ndarray, axis: PPMAxis, fwhm_ppm: float, shape: str = "lorentzian") -> np.ndarray:
    """``intensity`` (…, n) convolved along its last axis with a unit-area line of width
    ``fwhm_ppm`` (ppm, FWHM)."""
    if shape not in SHAPES:
        raise ValueError(f"line shape must be one of {SHAPES}, got {shape!r}")
    y = np.asarray(intensity, dtype=float)
    if fwhm_ppm <= 0:
        return y.copy()
    n = y.shape[-1]
    length = sfft.next_fast_len(2 * n)
    t = np.fft.rfftfreq(length, d=axis.step_ppm)
    if shape == "lorentzian":
        kernel = np.exp(-np.pi * fwhm_ppm * t)
    else:
        kernel = np.exp(-((np.pi * fwhm_ppm * t) ** 2) / (4.0 * np.log(2.0)))
    # centre the zero-padded signal so both tails have room
    pad = (length - n) // 2
    padded = np.zeros(y.shape[:-1] + (length,))
    padded[..., pad:pad + n] = y
    out = sfft.irfft(sfft.rfft(padded, axis=-1) * kernel, length, axis=-1)
    return out[..., pad:pad + n]
