"""Spectra from NMR parameters: central-transition MAS/static and 3QMAS lineshapes of
half-integer quadrupolar nuclei, spin-½ MAS and static CSA patterns, KDE of
p(δiso, |CQ|, η) on a precomputed (CQ, η) lineshape grid (Charpentier 2025), broadening,
mrsimulator export, plots and the ``ase-mlnmr spectrum`` command. See ``docs/spectra.md``.
"""
from .axis import PPMAxis, Spectrometer
from .sites import Site, SiteError, Sites, as_sites
from .central_transition import ct_centre_of_gravity_ppm, ct_spectrum_per_site, quadrupolar_shift_ppm
from .csa import csa_static_spectrum, isotropic_spectrum, principal_shifts
from .grid import LineshapeGrid, NormalisedCTTable, site_node_weights
from .kde import bandwidth_matrix, kde_evaluate, kde_node_weights, scott_bandwidth
from .mqmas import af_isotropic_shift, mqmas_2d_grid, mqmas_2d_per_site
from .broadening import broaden
from .simulate import (KDE_GRID, SITE_GRID, GridSettings, Spectrum, l1_distance, lineshape_grid, normalise_area,
                       simulate_mqmas_2d, simulate_spectrum)

__all__ = [name for name in dir() if not name.startswith("_")]
