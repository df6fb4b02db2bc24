"""One entry point for 1D spectra: :func:`simulate_spectrum`.

Routes for quadrupolar central-transition spectra:

* ``"sites"`` — exact per-site sum (each site's powder pattern computed on the axis);
* ``"grid"`` — per-site weights on the precomputed (|CQ|, η) lineshape grid (bandwidth → 0);
* ``"kde"`` — KDE of p(δiso, |CQ|, η) on the grid (Charpentier 2025 eq. 6), default
  bandwidth Scott's rule.

Spin-½ sites: ``experiment="mas"`` gives isotropic lines (or spinning sidebands at a
finite ``spinning_rate_Hz``), ``"static"`` the CSA powder patterns (the route is ignored). ``experiment="3qmas-iso"`` gives the isotropic projection
of a 3QMAS spectrum on the Amoureux–Fernandez axis (ideal excitation).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from .axis import PPMAxis, Spectrometer
from .broadening import broaden, fwhm_in_ppm
from .central_transition import ct_spectrum_per_site
from .csa import csa_mas_spectrum, csa_static_spectrum, isotropic_spectrum
from .grid import LineshapeGrid, NormalisedCTTable, site_node_weights
from .kde import bandwidth_matrix, kde_node_weights, sample_matrix
from .mqmas import mqmas_2d_grid, mqmas_2d_per_site, mqmas_projection_grid, mqmas_projection_per_site
from .sites import SiteError, SiteLike, Sites, as_sites

__all__ = ["Spectrum", "GridSettings", "KDE_GRID", "SITE_GRID", "simulate_spectrum", "simulate_mqmas_2d",
           "lineshape_grid",
           "normalise_area", "l1_distance"]

EXPERIMENTS = ("mas", "static", "3qmas-iso")
ROUTES = ("sites", "grid", "kde")


@dataclass(frozen=True)
class GridSettings:
    """Lineshape-grid resolution: CQ step (MHz), η step, α nodes and points of the
    normalised CDF tables, and ``cq_relative_step`` r: if > 0 the CQ nodes are adapted to
    the lineshape (geometric, ratio 1 + r; :class:`~ase_mlnmr.spectra.grid.LineshapeGrid`)
    and ``cq_step_MHz`` is unused. Accuracy measured in docs/spectra.md."""

    cq_step_MHz: float = 0.05
    eta_step: float = 0.05
    n_alpha: int = 512
    n_y: int = 16384
    cq_relative_step: float = 0.0


#: Default of the KDE route: uniform CQ nodes (the KDE integrates over grid cells).
KDE_GRID = GridSettings()
#: Default of the per-site grid route (bandwidth → 0): CQ nodes adapted to the lineshape
#: and a finer η step; ≤ 2 % L1 against the per-site route for single sites (docs/spectra.md).
SITE_GRID = GridSettings(eta_step=0.025, cq_relative_step=0.0125)


@dataclass
class Spectrum:
    """A 1D spectrum: ``ppm`` (ascending bin centres), ``intensity`` (per ppm) and what
    made it (``info``)."""

    ppm: np.ndarray
    intensity: np.ndarray
    info: dict = field(default_factory=dict)

    def to_csv(self, path: str | Path) -> Path:
        """Write ``ppm,intensity`` rows (ascending ppm)."""
        path = Path(path)
        np.savetxt(path, np.column_stack([self.ppm, self.intensity]), delimiter=",", header="ppm,intensity",
                   comments="", fmt="%.10g")
        return path


def normalise_area(intensity: np.ndarray, step_ppm: float) -> np.ndarray:
    """Scale to unit area per ppm: Σ I·step = 1."""
    total = float(np.sum(intensity) * step_ppm)
    if not total > 0:
        raise SiteError("the spectrum is empty on this axis (every line falls outside the ppm window)")
    return intensity / total


def l1_distance(a: np.ndarray, b: np.ndarray, step_ppm: float) -> float:
    """L1 = Σ|a − b|·step/2 of two spectra each normalised to unit area (0 identical, 1 disjoint)."""
    return 0.5 * float(np.sum(np.abs(normalise_area(a, step_ppm) - normalise_area(b, step_ppm))) * step_ppm)


_TABLES: dict = {}


def _table(mode: str, eta_step: float, n_alpha: int, n_y: int, progress: bool = False) -> NormalisedCTTable:
    key = (mode, eta_step, n_alpha, n_y)
    if key not in _TABLES:
        _TABLES[key] = NormalisedCTTable(mode, eta_step, n_alpha, n_y, progress=progress)
    return _TABLES[key]


@lru_cache(maxsize=8)
def _grid(mode: str, isotope: str, b0: float, step: float, cq_max: float, settings: GridSettings) -> LineshapeGrid:
    table = _table(mode, settings.eta_step, settings.n_alpha, settings.n_y)
    return LineshapeGrid(table, Spectrometer(isotope, b0), step, cq_max, settings.cq_step_MHz,
                         settings.cq_relative_step)


def lineshape_grid(spectrometer: Spectrometer, step_ppm: float, cq_max_MHz: float, mode: str = "mas",
                   settings: GridSettings = KDE_GRID, progress: bool = False) -> LineshapeGrid:
    """The (cached) lineshape grid for a spectrometer, ppm step and CQ range; the CQ range is
    rounded up to a whole MHz so that similar ensembles share a grid. ``progress`` shows a
    bar while the CT tables are computed (first use on a machine)."""
    cq_max = float(np.ceil(max(cq_max_MHz, settings.cq_step_MHz) + 1e-9))
    _table(mode, settings.eta_step, settings.n_alpha, settings.n_y, progress)
    return _grid(mode, spectrometer.isotope.name, spectrometer.b0_tesla, float(step_ppm), cq_max, settings)


def _node_weights(sites, spectrometer: Spectrometer, axis: PPMAxis, route: str, bandwidth,
                  grid_settings: GridSettings | None, grid: LineshapeGrid | None, mode: str, align_centres: bool,
                  progress: bool):
    """Grid and KDE routes: (node weights, conditional sd along δ in ppm, the lineshape
    grid, the bandwidth matrix H or None). A grid built here holds the KDE's |CQ| tail
    (4 standard deviations)."""
    h = bandwidth_matrix(sample_matrix(sites), bandwidth, sites.weight) if route == "kde" else None
    if grid is None:
        grid_settings = grid_settings or (KDE_GRID if route == "kde" else SITE_GRID)
        margin = 4.0 * np.sqrt(h[1, 1]) if h is not None else 0.0
        grid = lineshape_grid(spectrometer, axis.step_ppm, float(sites.abs_cq_MHz.max()) + margin, mode,
                              grid_settings, progress=progress)
    if route == "kde":
        weights, sd, h = kde_node_weights(sites, grid, axis, h, progress=progress and len(sites) > 20000)
        return weights, sd, grid, h
    return site_node_weights(sites, grid, axis, align_centres=align_centres), 0.0, grid, None


def _checked_sites(sites, spectrometer, route: str, cq_scale: float) -> Sites:
    """``sites`` as :class:`Sites`, checked against the route and the spectrometer's
    isotope, with |CQ| multiplied by ``cq_scale``."""
    sites = as_sites(sites)
    if route not in ROUTES:
        raise ValueError(f"route must be one of {ROUTES}, got {route!r}")
    if sites.isotope.name != spectrometer.isotope.name:
        raise SiteError(f"sites are {sites.isotope.name} but the spectrometer is set for {spectrometer.isotope.name}")
    if cq_scale != 1.0:
        sites = sites.with_cq_scale(cq_scale)
    return sites


def simulate_spectrum(sites: SiteLike, spectrometer: Spectrometer, axis: PPMAxis, experiment: str = "mas",
                      route: str = "kde", bandwidth="scott", grid_settings: GridSettings | None = None,
                      grid: LineshapeGrid | None = None, broadening: tuple[float, str, str] | None = None,
                      cq_scale: float = 1.0, normalise: bool = True, progress: bool = False,
                      spinning_rate_Hz: float = np.inf) -> Spectrum:
    """Simulate a 1D spectrum of ``sites`` on ``axis``.

    experiment: "mas" (fast MAS; CT for quadrupolar nuclei), "static", "3qmas-iso"
    (AF isotropic projection); route: "sites", "grid" or "kde" (quadrupolar only);
    bandwidth: KDE bandwidth ("scott", factor, or 3×3 matrix; ``0`` means the grid route);
    grid_settings: lineshape-grid resolution (default :data:`SITE_GRID` for the grid route,
    :data:`KDE_GRID` for the KDE route);
    broadening: (FWHM, "ppm"|"Hz", "lorentzian"|"gaussian"); cq_scale: vibrational factor
    on |CQ| (η unchanged); spinning_rate_Hz: MAS rate (default infinite; finite rates give
    spinning sidebands, spin-½ CSA only). Returns an area-normalised :class:`Spectrum`.
    """
    if experiment not in EXPERIMENTS:
        raise ValueError(f"experiment must be one of {EXPERIMENTS}, got {experiment!r}")
    sites = _checked_sites(sites, spectrometer, route, cq_scale)
    info = {"isotope": sites.isotope.name, "b0_tesla": spectrometer.b0_tesla, "experiment": experiment,
            "n_sites": len(sites), "cq_scale": cq_scale, "nu_ref_Hz": spectrometer.nu_ref_Hz,
            "nu0_Hz": spectrometer.nu0_Hz}
    quadrupolar = sites.isotope.spin > 0.5 and np.any(sites.cq_MHz != 0) or experiment == "3qmas-iso"
    if route == "kde" and isinstance(bandwidth, (int, float)) and not isinstance(bandwidth, bool) and bandwidth == 0:
        route = "grid"
    finite_rate = np.isfinite(spinning_rate_Hz)
    if finite_rate and (quadrupolar or experiment != "mas"):
        raise ValueError("a finite spinning rate (spinning sidebands) is implemented for spin-1/2 CSA under MAS "
                         "only; quadrupolar lineshapes assume infinitely fast MAS")
    if not quadrupolar:
        if experiment == "mas" and finite_rate:
            y = csa_mas_spectrum(sites, spectrometer, axis, spinning_rate_Hz)
            info["spinning_rate_Hz"] = float(spinning_rate_Hz)
        elif experiment == "mas":
            y = isotropic_spectrum(sites.delta_iso_ppm, sites.weight, axis)
        else:
            y = csa_static_spectrum(sites, axis)
        info["route"] = "sites"
    else:
        sites.require_quadrupolar()
        mode = "static" if experiment == "static" else "mas"
        if mode == "static" and np.any(sites.csa_zeta_ppm != 0) and route != "sites":
            raise SiteError("static central-transition lineshapes with a CSA need route='sites': the (CQ, eta) "
                            "grid holds no CSA or orientation")
        info["route"] = route
        if route == "sites":
            if experiment == "3qmas-iso":
                y = mqmas_projection_per_site(sites, spectrometer, axis)
            else:
                y = ct_spectrum_per_site(sites, spectrometer, axis, mode, progress=progress)
        else:
            weights, sd, grid, h = _node_weights(sites, spectrometer, axis, route, bandwidth, grid_settings, grid, mode,
                                                 experiment != "3qmas-iso", progress)
            if h is not None:
                info["bandwidth_matrix"] = h.tolist()
            if experiment == "3qmas-iso":
                y = mqmas_projection_grid(weights, grid, axis)
                if sd > 0:
                    y = broaden(y, axis, sd * np.sqrt(8 * np.log(2)), "gaussian")
            else:
                y = grid.spectrum(weights, axis, gaussian_sd_ppm=sd)
            info["grid"] = {"cq_step_MHz": grid.cq_step if grid.cq_relative_step == 0 else None,
                            "cq_relative_step": grid.cq_relative_step,
                            "eta_step": grid.eta_step, "cq_max_MHz": grid.cq_nodes[-1],
                            "n_alpha": grid.table.n_alpha, "n_y": grid.table.n_y}
    if broadening is not None:
        fwhm, unit, shape = broadening
        y = broaden(y, axis, fwhm_in_ppm(fwhm, unit, spectrometer.nu_ref_Hz), shape)
        info["broadening"] = {"fwhm": fwhm, "unit": unit, "shape": shape}
    if normalise:
        y = normalise_area(y, axis.step_ppm)
    return Spectrum(axis.ppm, y, info)


def simulate_mqmas_2d(sites: SiteLike, spectrometer: Spectrometer, axis: PPMAxis, route: str = "kde",
                      bandwidth="scott", cq_scale: float = 1.0, normalise: bool = True,
                      progress: bool = False) -> np.ndarray:
    """Sheared 3QMAS spectrum I[F1, F2] (shape (n, n)) of ``sites`` with both dimensions
    on ``axis`` (ppm; F1 the Amoureux–Fernandez isotropic axis, F2 the MAS central
    transition, :mod:`.mqmas`), ideal excitation. Routes and ``bandwidth`` as in
    :func:`simulate_spectrum`; ``cq_scale`` multiplies |CQ|. With ``normalise`` the volume
    ΣΣ I·ΔF1·ΔF2 is 1 (per ppm²)."""
    sites = _checked_sites(sites, spectrometer, route, cq_scale)
    sites.require_quadrupolar()
    if route == "sites":
        z = mqmas_2d_per_site(sites, spectrometer, axis, axis, progress=progress)
    else:
        weights, sd, grid, _ = _node_weights(sites, spectrometer, axis, route, bandwidth, None, None, "mas", False,
                                             progress)
        z = mqmas_2d_grid(weights, grid, axis, axis, sd)
    if normalise:
        volume = z.sum() * axis.step_ppm**2
        if not volume > 0:
            raise SiteError("the 3QMAS spectrum has no intensity inside the ppm window: widen the axis")
        z = z / volume
    return z
