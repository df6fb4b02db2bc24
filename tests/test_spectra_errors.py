"""Bad input gives a clear error naming the problem; the CLI writes CSV and PNG."""
from __future__ import annotations

import numpy as np
import pytest

from ase_mlnmr.nmr.isotopes import Isotope
from ase_mlnmr.spectra import PPMAxis, Site, SiteError, Sites, Spectrometer, simulate_spectrum
from ase_mlnmr.spectra.io import read_cq_scale, sites_from_csv

AXIS = PPMAxis.from_range(-50, 20, 512)


def test_spin_half_isotope_asked_for_quadrupolar_lineshape():
    with pytest.raises(SiteError, match="spin 1/2"):
        Site("29Si", -90.0, cq_MHz=2.0)
    with pytest.raises(SiteError, match="spin 1/2.*no quadrupolar central-transition"):
        simulate_spectrum(Sites("29Si", [-90.0]), Spectrometer("29Si", 9.4), AXIS, "3qmas-iso")


@pytest.mark.parametrize("eta", [-0.1, 1.2])
def test_eta_outside_unit_interval(eta):
    with pytest.raises(SiteError, match=r"eta_q of site 0 is .*must lie in \[0, 1\]"):
        Sites("23Na", [0.0], [2.0], [eta])


@pytest.mark.parametrize("column", ["delta_iso_ppm", "cq_MHz", "eta_q"])
def test_nan_parameters(column):
    values = {"delta_iso_ppm": [0.0, 1.0], "cq_MHz": [2.0, 2.0], "eta_q": [0.2, 0.3]}
    values[column] = [values[column][0], np.nan]
    with pytest.raises(SiteError, match=f"{column} of site 1 .*NaN"):
        Sites("23Na", **values)


def test_isotope_without_quadrupole_moment():
    no_q = Isotope("23Na", "Na", 23, 1.5, 11.2688, 0.0, 26.4519)
    sites = Sites(no_q, [0.0], [1.0], [0.1])
    with pytest.raises(SiteError, match="no quadrupole moment"):
        sites.require_quadrupolar()
    with pytest.raises(SiteError, match="no quadrupole moment"):
        simulate_spectrum(sites, Spectrometer(no_q, 11.7), AXIS, "mas", route="sites")


def test_empty_ensemble(tmp_path):
    with pytest.raises(SiteError, match="empty ensemble"):
        Sites("23Na", [], [], [])
    with pytest.raises(SiteError, match="empty ensemble"):
        simulate_spectrum([], Spectrometer("23Na", 11.7), AXIS)
    path = tmp_path / "empty.csv"
    path.write_text("delta_iso_ppm,cq_MHz,eta\n")
    with pytest.raises(SiteError, match="empty ensemble"):
        sites_from_csv(path, "23Na")


def test_other_bad_inputs(tmp_path):
    with pytest.raises(SiteError, match="bandwidth matrix is singular"):
        simulate_spectrum(Sites("23Na", [0.0, 0.0], [2.0, 2.0], [0.1, 0.1]), Spectrometer("23Na", 11.7), AXIS,
                          route="kde")
    with pytest.raises(ValueError, match="B0 must be a positive"):
        Spectrometer("23Na", -1.0)
    with pytest.raises(SiteError, match="cq_scale must be a positive"):
        read_cq_scale(-0.5, "Na")
    path = tmp_path / "scale.json"
    path.write_text('{"cq_scale": {"Na": 0.8}}')
    assert read_cq_scale(path, "Na") == 0.8
    with pytest.raises(SiteError, match="no cq_scale for element O"):
        read_cq_scale(path, "O")


def test_cli_spectrum_writes_csv_and_png(tmp_path):
    from ase_mlnmr.cli import main

    rng = np.random.default_rng(0)
    path = tmp_path / "sites.csv"
    rows = ["element,delta_iso_ppm,cq_MHz,eta_q"] + [f"Na,{d:.3f},{c:.3f},{e:.3f}" for d, c, e in
                                                     zip(rng.normal(0, 3, 50), rng.uniform(1, 3, 50), rng.uniform(0, 1, 50))]
    rows.append("Si,-90,,")
    path.write_text("\n".join(rows) + "\n")
    out = tmp_path / "out" / "na"
    code = main(["spectrum", str(path), "--isotope", "23Na", "--larmor-1h", "500", "--route", "sites",
                 "--lb", "100", "--cq-scale", "0.9", "-o", str(out), "-q"])
    assert code == 0
    data = np.loadtxt(out.with_suffix(".csv"), delimiter=",", skiprows=1)
    assert data.shape[1] == 2 and abs(data[:, 1].sum() * (data[1, 0] - data[0, 0]) - 1) < 1e-6
    assert out.with_suffix(".png").stat().st_size > 0
    assert main(["spectrum", str(path), "--isotope", "29Si", "--b0", "9.4", "-o", str(out), "-q"]) == 0  # Si row
    assert main(["spectrum", str(tmp_path / "missing.csv"), "--isotope", "23Na", "--b0", "9.4", "-q"]) == 2


def test_cli_structure_input_needs_referencing(tmp_path):
    from ase import Atoms
    from ase.io import write

    from ase_mlnmr.cli import main

    atoms = Atoms("NaNa", positions=[[0, 0, 0], [2, 0, 0]], cell=[6, 6, 6], pbc=True)
    atoms.arrays["efg"] = np.array([np.diag([-0.03, -0.07, 0.1]), np.diag([-0.05, -0.05, 0.1])])
    atoms.arrays["ms"] = np.array([np.diag([540.0, 560.0, 600.0])] * 2)
    atoms.info["magres_units"] = {"ms": "ppm", "efg": "au"}
    path = tmp_path / "na.magres"
    write(path, atoms, format="magres")
    out = tmp_path / "na"
    base = ["spectrum", str(path), "--isotope", "23Na", "--b0", "11.7", "--route", "sites", "-q", "-o", str(out)]
    assert main(base) == 2  # shielding tensors without a reference
    assert main(base + ["--model", str(tmp_path / "missing.npz")]) == 2
    assert main(base + ["--model", "m.npz", "--sigma-ref", "550"]) == 2
    assert main(base + ["--sigma-ref", "550", "--export-mrsim", str(tmp_path / "na.json")]) == 0
    data = np.loadtxt(out.with_suffix(".csv"), delimiter=",", skiprows=1)
    cog = float((data[:, 0] * data[:, 1]).sum() / data[:, 1].sum())
    # δiso = 550 − 566.67 ppm; CQ = 0.234965·104·0.1 MHz, η 0.4 and 0; δQIS = −25000 (PQ/ν0)² (I = 3/2)
    nu0, nu_ref = 11.2688 * 11.7, 0.264519 * 11.7 / 0.02348731439404777
    cq = 0.234965 * 104 * 0.1
    qis = [-25000 * (cq**2 * (1 + e**2 / 3)) / nu0**2 * nu0 / nu_ref for e in (0.4, 0.0)]
    assert cog == pytest.approx(550 - 1700 / 3 + np.mean(qis), abs=0.02)


def test_static_ct_with_csa_needs_per_site_route():
    sites = Sites("23Na", [0.0], [2.0], [0.3], csa_zeta_ppm=[40.0], csa_eta=[0.2])
    with pytest.raises(SiteError, match="route='sites'"):
        simulate_spectrum(sites, Spectrometer("23Na", 11.7), AXIS, "static", route="grid")
    with pytest.raises(ValueError, match="spin-1/2 CSA under MAS only"):
        simulate_spectrum(sites, Spectrometer("23Na", 11.7), AXIS, "mas", spinning_rate_Hz=10000.0)


def test_integer_spin_has_no_central_transition():
    with pytest.raises(SiteError, match="integer spin 1"):
        simulate_spectrum(Sites("2H", [0.0], [0.2], [0.1]), Spectrometer("2H", 11.7), AXIS, "mas", route="sites")


def test_all_lines_outside_the_window():
    with pytest.raises(SiteError, match="empty on this axis"):
        simulate_spectrum(Sites("23Na", [500.0], [1.0], [0.1]), Spectrometer("23Na", 11.7), AXIS, "mas", route="sites")
