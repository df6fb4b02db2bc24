"""The power-law calibration fit (L-BFGS-B with the analytic gradient) ends at a minimum of an
independently written negative log likelihood (plain loops over nodes, NumPy only)."""
from __future__ import annotations

import numpy as np
import pytest

from ase_mlnmr.models.committee import power_calibration, spread_noise_nodes


def _nll(a, b, c, residuals, spreads, dof):
    """−Σ_i log Σ_n w_n N_d(r_i; 0, a² σ_in^(2b) + c²), σ_in² = s_i² ratio_n (exact s without dof)."""
    total = 0.0
    for r, s, nu in zip(residuals, spreads, dof if dof is not None else [None] * len(spreads)):
        ratio, weight = (np.array([1.0]), np.array([1.0])) if nu is None else (
            np.exp(spread_noise_nodes(nu)[0]), np.exp(spread_noise_nodes(nu)[1]))
        u2 = a**2 * (s**2 * ratio) ** b + c**2
        density = (2 * np.pi * u2) ** (-r.size / 2) * np.exp(-0.5 * np.sum(r**2) / u2)
        total -= np.log(np.sum(weight * density))
    return total


@pytest.mark.parametrize("d, with_dof", [(1, False), (1, True), (5, True)])
def test_fit_is_a_minimum_of_an_independent_likelihood(d, with_dof):
    rng = np.random.default_rng(11 + d)
    n = 400
    s = np.exp(rng.normal(0.0, 0.7, n))
    r = rng.normal(size=(n, d)) * np.sqrt(1.3**2 * s[:, None] ** 1.4 + 0.4**2)
    dof = np.full(n, 3.0 * d) if with_dof else None
    a, b, c = power_calibration(r, s, dof)
    assert 0.0 < b < 2.0 and c > 0.0
    best = _nll(a, b, c, r, s, dof)
    for step in ((1.003, 0, 1), (0.997, 0, 1), (1, 0.003, 1), (1, -0.003, 1), (1, 0, 1.003), (1, 0, 0.997)):
        assert best <= _nll(a * step[0], b + step[1], c * step[2], r, s, dof) + 1e-9 * abs(best)
