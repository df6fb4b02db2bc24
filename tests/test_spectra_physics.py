"""Analytic properties of the lineshapes and the KDE, against independent references
(closed forms, scipy.stats.gaussian_kde, a known Gaussian mixture)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, special, stats

from spectra_helpers import TEST_GRID, l1_half

from ase_mlnmr.spectra import (PPMAxis, Sites, Spectrometer, broaden, kde_evaluate, scott_bandwidth,
                               simulate_spectrum)
from ase_mlnmr.spectra.csa import principal_shifts


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("ASE_MLNMR_CACHE", str(tmp_path_factory.getbasetemp() / "spectra_cache"))


def _qis_reference(cq_mhz, eta, spin, gamma, xi, b0):
    """δQIS from NMR_CONVENTIONS.md written out here: −(3/40)(PQ/ν0)²[I(I+1)−¾]/[I²(2I−1)²]·1e6,
    converted to the ν_ref ppm axis (× ν0/ν_ref)."""
    nu0 = abs(gamma) * b0
    nu_ref = xi / 100 * b0 / 0.02348731439404777
    pq = cq_mhz * np.sqrt(1 + eta**2 / 3)
    qis = -(3 / 40) * (pq / nu0) ** 2 * (spin * (spin + 1) - 0.75) / (spin**2 * (2 * spin - 1) ** 2) * 1e6
    return qis * nu0 / nu_ref


@pytest.mark.parametrize("isotope, spin, gamma, xi, cq", [
    ("23Na", 1.5, 11.2688, 26.4519, 2.2), ("27Al", 2.5, 11.1031, 26.056859, 6.0),
    ("43Ca", 3.5, -2.86967, 6.730029, 1.5), ("87Sr", 4.5, -1.85246, 4.333822, 12.0)])
@pytest.mark.parametrize("mode", ["mas", "static"])
def test_centre_of_gravity_is_delta_iso_plus_qis(isotope, spin, gamma, xi, cq, mode):
    b0, delta, eta = 14.1, 3.0, 0.45
    expected = delta + _qis_reference(cq, eta, spin, gamma, xi, b0)
    sites = Sites(isotope, [delta], [cq], [eta])
    spectrometer = Spectrometer(isotope, b0)
    span = 4 * abs(expected - delta) + 1
    axis = PPMAxis.from_range(delta - 4 * span, delta + 3 * span, 3001)
    spectrum = simulate_spectrum(sites, spectrometer, axis, mode, route="sites")
    cog = float((spectrum.ppm * spectrum.intensity).sum() / spectrum.intensity.sum())
    assert abs(cog - expected) <= 1e-3 * abs(expected - delta) + 1e-4


def _bloembergen_rowland(delta, d11, d22, d33):
    """Closed-form static CSA powder density (NMR_CONVENTIONS.md), d11 > d22 > d33."""
    delta = np.atleast_1d(np.asarray(delta, dtype=float))
    out = np.zeros_like(delta)
    low = (delta > d33) & (delta < d22)
    high = (delta > d22) & (delta < d11)
    m = (delta[low] - d33) * (d11 - d22) / ((d11 - delta[low]) * (d22 - d33))
    out[low] = special.ellipk(m) / (np.pi * np.sqrt((d11 - delta[low]) * (d22 - d33)))
    m = (d11 - delta[high]) * (d22 - d33) / ((d11 - d22) * (delta[high] - d33))
    out[high] = special.ellipk(m) / (np.pi * np.sqrt((delta[high] - d33) * (d11 - d22)))
    return out


def test_static_csa_edges_and_closed_form():
    delta, zeta, eta = -90.0, 50.0, 0.6
    d11, d22, d33 = (float(v) for v in principal_shifts(delta, zeta, eta))
    assert np.allclose([d11, d22, d33], [-40.0, -100.0, -130.0])
    axis = PPMAxis.from_range(-150, -20, 1301)
    spectrum = simulate_spectrum(Sites("29Si", [delta], csa_zeta_ppm=[zeta], csa_eta=[eta]), Spectrometer("29Si", 9.4),
                                 axis, "static")
    y = spectrum.intensity
    inside = np.flatnonzero(y > 1e-12)
    # edges: first and last populated bins contain δ33 and δ11
    assert abs(axis.ppm[inside[0]] - d33) <= axis.step_ppm and abs(axis.ppm[inside[-1]] - d11) <= axis.step_ppm
    # singularity at δ22
    assert abs(axis.ppm[np.argmax(y)] - d22) <= axis.step_ppm
    # bin integrals of the closed form
    edges = axis.edges
    ref = np.array([integrate.quad(lambda v: _bloembergen_rowland(v, d11, d22, d33)[0], a, b, points=[d22] if a < d22 < b else None, limit=200)[0]
                    if b > d33 and a < d11 else 0.0 for a, b in zip(edges[:-1], edges[1:])])
    assert l1_half(y, ref, axis.step_ppm) <= 0.005


def test_spin_half_mas_is_isotropic_line():
    axis = PPMAxis.from_range(-100, -80, 201)
    spectrum = simulate_spectrum(Sites("29Si", [-90.0, -85.5], csa_zeta_ppm=[50.0, 30.0]), Spectrometer("29Si", 9.4),
                                 axis, "mas")
    cog = float((spectrum.ppm * spectrum.intensity).sum() / spectrum.intensity.sum())
    assert abs(cog - (-87.75)) < 1e-9


def test_broadening_lorentzian_and_gaussian_widths():
    axis = PPMAxis.from_range(-50, 50, 2001)
    line = np.zeros(axis.count)
    line[1000] = 1.0 / axis.step_ppm
    for shape in ("lorentzian", "gaussian"):
        y = broaden(line, axis, 4.0, shape)
        half = y >= y.max() / 2
        width = axis.ppm[half].max() - axis.ppm[half].min()
        assert abs(width - 4.0) <= 2 * axis.step_ppm
    g = broaden(line, axis, 4.0, "gaussian")
    sd = 4.0 / np.sqrt(8 * np.log(2))
    assert np.allclose(g, stats.norm.pdf(axis.ppm, 0, sd), atol=1e-6)


def _mixture(rng, n):
    """Two correlated Gaussians in (δ, |CQ|, η), away from the boundaries."""
    means = np.array([[0.0, 2.0, 0.5], [10.0, 3.0, 0.55]])
    covs = [np.array([[4.0, 0.3, 0.0], [0.3, 0.04, 0.002], [0.0, 0.002, 0.004]]),
            np.array([[2.0, -0.2, 0.0], [-0.2, 0.09, 0.0], [0.0, 0.0, 0.003]])]
    k = rng.random(n) < 0.4
    x = np.where(k[:, None], rng.multivariate_normal(means[0], covs[0], n), rng.multivariate_normal(means[1], covs[1], n))
    pdf = lambda p: 0.4 * stats.multivariate_normal(means[0], covs[0]).pdf(p) + 0.6 * stats.multivariate_normal(means[1], covs[1]).pdf(p)
    return x, pdf


def test_kde_recovers_gaussian_mixture_and_matches_scipy():
    rng = np.random.default_rng(3)
    x, pdf = _mixture(rng, 4000)
    h = scott_bandwidth(x)
    assert np.allclose(h, np.cov(x.T) * 4000 ** (-2 / 7))
    probe = _mixture(np.random.default_rng(4), 300)[0]
    ours = kde_evaluate(probe, x, h, reflect=False)
    scipy_kde = stats.gaussian_kde(x.T, bw_method="scott")(probe.T)
    assert np.allclose(ours, scipy_kde, rtol=1e-10)
    truth = pdf(probe)
    # mean relative error E_p|p_hat - p|/p at points drawn from p: falls with n, and is
    # below 25 % for 16 000 samples at half Scott's bandwidth (a bimodal target oversmoothed
    # by the default rule)
    error = lambda p_hat: float(np.mean(np.abs(p_hat - truth) / truth))
    big, _ = _mixture(np.random.default_rng(5), 16000)
    e_small = error(ours)
    e_big = error(kde_evaluate(probe, big, scott_bandwidth(big), reflect=False))
    e_half = error(kde_evaluate(probe, big, scott_bandwidth(big) * 0.25, reflect=False))
    assert e_big < e_small
    assert e_half < 0.25


def test_kde_reflection_keeps_unit_mass_on_support():
    rng = np.random.default_rng(5)
    x = np.column_stack([rng.normal(0, 1, 400), np.abs(rng.normal(0.3, 0.4, 400)), rng.uniform(0, 1, 400)])
    h = scott_bandwidth(x)
    d, c, e = np.meshgrid(np.linspace(-6, 6, 25), np.linspace(0, 2.5, 26), np.linspace(0, 1, 21), indexing="ij")
    p = kde_evaluate(np.column_stack([d.ravel(), c.ravel(), e.ravel()]), x, h).reshape(d.shape)
    mass = integrate.trapezoid(integrate.trapezoid(integrate.trapezoid(p, e[0, 0], axis=2), c[0, :, 0], axis=1),
                               d[:, 0, 0])
    assert abs(mass - 1) < 0.01
    p_plain = kde_evaluate(np.column_stack([d.ravel(), c.ravel(), e.ravel()]), x, h, reflect=False).reshape(d.shape)
    mass_plain = integrate.trapezoid(integrate.trapezoid(integrate.trapezoid(p_plain, e[0, 0], axis=2), c[0, :, 0],
                                                         axis=1), d[:, 0, 0])
    assert mass_plain < 0.9  # without reflection the boundaries lose mass


def test_kde_spectrum_converges_to_per_site_sum():
    rng = np.random.default_rng(11)
    n = 200
    sites = Sites("23Na", rng.normal(0, 3, n), np.clip(rng.normal(2.0, 0.5, n), 0.3, None), rng.uniform(0.05, 0.95, n))
    spectrometer = Spectrometer("23Na", 11.7)
    axis = PPMAxis.from_range(-60, 25, 2048)
    exact = simulate_spectrum(sites, spectrometer, axis, "mas", route="sites").intensity
    errors = []
    for factor in (0.8, 0.4, 0.2):
        y = simulate_spectrum(sites, spectrometer, axis, "mas", route="kde", bandwidth=factor,
                              grid_settings=TEST_GRID).intensity
        errors.append(l1_half(y, exact, axis.step_ppm))
    assert all(b < a for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.04
    zero = simulate_spectrum(sites, spectrometer, axis, "mas", route="kde", bandwidth=0, grid_settings=TEST_GRID)
    assert l1_half(zero.intensity, exact, axis.step_ppm) < errors[-1]


def test_kde_grid_weights_equal_direct_kde():
    """The grid's KDE weights (node marginals and conditional δ means) against the direct
    KDE sum integrated over δ numerically, reflections included."""
    from ase_mlnmr.spectra.kde import kde_node_weights, sample_matrix
    from ase_mlnmr.spectra.simulate import lineshape_grid

    rng = np.random.default_rng(8)
    n = 150
    sites = Sites("23Na", rng.normal(0, 3, n), np.abs(rng.normal(0.6, 0.5, n)), rng.uniform(0, 1, n))
    spectrometer = Spectrometer("23Na", 11.7)
    axis = PPMAxis.from_range(-40, 25, 1024)
    grid = lineshape_grid(spectrometer, axis.step_ppm, 3.0, "mas", TEST_GRID)
    h = np.array([[4.0, 0.3, 0.05], [0.3, 0.09, 0.004], [0.05, 0.004, 0.01]])
    weights, sd, _ = kde_node_weights(sites, grid, axis, h)
    n_eta = len(grid.eta_nodes)
    mass = np.bincount(weights.nodes, weights=weights.weight, minlength=grid.n_nodes)
    mean_delta = np.bincount(weights.nodes, weights=weights.weight * (axis.start_ppm + weights.shift_index * axis.step_ppm),
                             minlength=grid.n_nodes)
    delta = np.linspace(-40, 40, 801)
    for node in (0, 5, 7 * n_eta + 10, 12 * n_eta, 20 * n_eta + 20, 30 * n_eta + 3):
        c, e = grid.cq_nodes[node // n_eta], grid.eta_nodes[node % n_eta]
        area = grid.cq_step * grid.eta_step * (0.5 if node // n_eta == 0 else 1.0) * (0.5 if e in (0.0, 1.0) else 1.0)
        p = kde_evaluate(np.column_stack([delta, np.full_like(delta, c), np.full_like(delta, e)]), sample_matrix(sites), h)
        marginal = integrate.trapezoid(p, delta)
        assert mass[node] / area == pytest.approx(marginal, rel=2e-3, abs=1e-6)
        if marginal > 1e-3:
            assert mean_delta[node] / mass[node] == pytest.approx(integrate.trapezoid(p * delta, delta) / marginal,
                                                                   abs=1e-3)
    assert sd == pytest.approx(np.sqrt(h[0, 0] - h[0, 1:] @ np.linalg.solve(h[1:, 1:], h[1:, 0])))


def _spin_operators(spin):
    m = np.arange(spin, -spin - 1, -1)
    raise_ = np.diag(np.sqrt(spin * (spin + 1) - m[1:] * (m[1:] + 1)), 1)
    return (raise_ + raise_.T) / 2, (raise_ - raise_.T) / 2j, np.diag(m)


def _exact_ct_shift_hz(spin, cq_hz, eta, nu0_hz, field):
    """CT frequency − ν0 from exact diagonalisation of −ν0 b·I + H_Q (EFG principal frame,
    H_Q = CQ/(4I(2I−1))·[3Iz² − I(I+1) + η(Ix² − Iy²)], η = (Vxx − Vyy)/Vzz)."""
    ix, iy, iz = _spin_operators(spin)
    hq = cq_hz / (4 * spin * (2 * spin - 1)) * (3 * iz @ iz - spin * (spin + 1) * np.eye(len(iz)) + eta * (ix @ ix - iy @ iy))
    energies = np.linalg.eigvalsh(-nu0_hz * (field[0] * ix + field[1] * iy + field[2] * iz) + hq)
    k = int(spin - 0.5)  # ascending energies: m = I, ..., −I; the CT joins m = ½ and −½
    return energies[k + 1] - energies[k] - nu0_hz


@pytest.mark.parametrize("spin", [1.5, 2.5, 3.5])
def test_ct_frequencies_against_exact_diagonalisation(spin):
    """Static: the (A, B, C) formula with α measured from the EFG x axis; MAS: the time
    average over a rotor period of the exact static shift. ν0 = 2 GHz makes third-order
    terms negligible."""
    from ase_mlnmr.spectra.central_transition import ct_coefficients

    cq, eta, nu0 = 3.0e6, 0.55, 2.0e9
    nu_q = 3 * cq / (2 * spin * (2 * spin - 1))
    p = -(nu_q**2 / (6 * nu0)) * (spin * (spin + 1) - 0.75)
    rng = np.random.default_rng(1)
    theta_m = np.arccos(1 / np.sqrt(3))
    for beta, alpha in zip(np.arccos(rng.uniform(-1, 1, 4)), rng.uniform(0, 2 * np.pi, 4)):
        axis = np.array([np.sin(beta) * np.cos(alpha), np.sin(beta) * np.sin(alpha), np.cos(beta)])
        a, b, c = ct_coefficients(eta, np.cos(2 * alpha), "static")
        expected = p * (a * np.cos(beta) ** 4 + b * np.cos(beta) ** 2 + c)
        assert _exact_ct_shift_hz(spin, cq, eta, nu0, axis) == pytest.approx(expected, rel=2e-3, abs=1e-2)
        # MAS: the field turns about the rotor axis at the magic angle
        e1 = np.cross(axis, [0.3, 0.5, 0.8])
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(axis, e1)
        phases = np.arange(64) * 2 * np.pi / 64
        shifts = [_exact_ct_shift_hz(spin, cq, eta, nu0, np.cos(theta_m) * axis + np.sin(theta_m) *
                                     (np.cos(t) * e1 + np.sin(t) * e2)) for t in phases]
        a, b, c = ct_coefficients(eta, np.cos(2 * alpha), "mas")
        expected = p * (a * np.cos(beta) ** 4 + b * np.cos(beta) ** 2 + c)
        assert np.mean(shifts) == pytest.approx(expected, rel=2e-3, abs=1e-2)
