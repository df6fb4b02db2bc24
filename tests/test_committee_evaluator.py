"""Committee outputs of the compiled evaluator against a NumPy reference built from the
regressors' member predictions on the Python features (≤ 1e-12 × max |value|)."""
from __future__ import annotations

import numpy as np
import pytest

from ase_mlnmr.core import evaluator as ev
from ase_mlnmr.core.spherical_tensors import l2_to_symmetric_traceless
from ase_mlnmr.nmr.efg import CQ_MHZ_PER_MB_AU
from ase_mlnmr.nmr.isotopes import quadrupolar_isotope
from ase_mlnmr.nmr_model import NMRModel

from synthetic_data import synthetic_dataset

CONFIG = {"descriptor": {"r_cut": 4.5, "n_max": 3, "l_max": 2, "sigma": 0.4},
          "ms_iso": {"n_inducing": 40}, "ood": {"n_inducing": 40}, "efg": {"alpha": 1e-3},
          "ms_aniso": {"alpha": 1e-3}, "committee": {"size": 8, "fraction": 0.5, "seed": 2},
          "species": {"Si": {"properties": ["ms_iso", "ms_aniso"]}, "O": {"properties": ["efg"]}}}


@pytest.fixture(scope="module")
def trained():
    data = synthetic_dataset(n_structures=10, n_atoms=24, seed=8)
    return data, NMRModel.train(data, CONFIG, progress=False)


def _std(members, alpha):
    return alpha * np.std(members, axis=0, ddof=1)


def _efg_reference(members, mean, alpha, cq_per_au):
    """(|Vzz| std, |CQ| std, PQ std, axis flag) from Cartesian member tensors (K, n, 3, 3)."""
    values, vectors = np.linalg.eigh(members)
    order = np.argsort(np.abs(values), axis=-1)
    values = np.take_along_axis(values, order, axis=-1)  # |Vxx| <= |Vyy| <= |Vzz|
    axes = np.take_along_axis(vectors, order[..., None, :], axis=-1)[..., 2]
    vzz = values[..., 2]
    eta = np.clip((values[..., 0] - values[..., 1]) / vzz, 0.0, 1.0)
    cq = np.abs(cq_per_au * vzz)
    pq = cq * np.sqrt(1 + eta**2 / 3)
    mean_values, mean_vectors = np.linalg.eigh(mean)
    mean_axis = np.take_along_axis(mean_vectors, np.argsort(np.abs(mean_values), axis=-1)[:, None, :],
                                   axis=-1)[..., 2]
    cosine = np.abs(np.einsum("kni,ni->kn", axes, mean_axis))
    return _std(np.abs(vzz), alpha), _std(cq, alpha), _std(pq, alpha), (cosine <= 1 / np.sqrt(2)).any(axis=0)


def test_evaluator_committee_outputs_match_the_numpy_reference(trained):
    data, model = trained
    atoms = data.structures[3]
    prediction = model.predict(atoms)
    symbols = np.array(atoms.get_chemical_symbols())
    si, o = np.flatnonzero(symbols == "Si"), np.flatnonzero(symbols == "O")

    iso = model.models[("Si", "ms_iso")]
    members = iso.regressor.predict_members(iso.features(atoms, si))
    expected = _std(members, iso.regressor.calibration_)
    assert np.max(np.abs(prediction.ms_iso_std[si] - expected)) <= 1e-12 * np.abs(members).max()

    aniso = model.models[("Si", "ms_aniso")]
    members = aniso.regressor.predict_members(aniso.features(atoms, si))
    expected = _std(members, aniso.regressor.calibration_)
    assert np.max(np.abs(prediction.ms_aniso_std[si] - expected)) <= 1e-12 * np.abs(members).max()

    efg = model.models[("O", "efg")]
    members = efg.regressor.predict_members(efg.features(atoms, o))
    alpha = efg.regressor.calibration_
    assert np.max(np.abs(prediction.efg_std[o] - _std(members, alpha))) <= 1e-12 * np.abs(members).max()
    cartesian = l2_to_symmetric_traceless(members.reshape(-1, 5)).reshape(len(members), len(o), 3, 3)
    cq_per_au = CQ_MHZ_PER_MB_AU * quadrupolar_isotope("O", model.isotopes).quadrupole_moment_mb
    vzz_std, cq_std, pq_std, flag = _efg_reference(cartesian, prediction.efg[o], alpha, cq_per_au)
    scale = np.abs(cartesian).max()
    assert np.max(np.abs(prediction.vzz_std[o] - vzz_std)) <= 1e-12 * scale
    assert np.max(np.abs(prediction.cq_std[o] - cq_std)) <= 1e-12 * scale * abs(cq_per_au)
    assert np.max(np.abs(prediction.pq_std[o] - pq_std)) <= 1e-12 * scale * abs(cq_per_au) * 2
    np.testing.assert_array_equal(prediction.vzz_axis_flag[o], flag.astype(float))
    # no committee for what the element lacks: NaN there
    assert np.isnan(prediction.ms_iso_std[o]).all() and np.isnan(prediction.cq_std[si]).all()


def test_committee_fields_follow_the_existing_layout():
    fields = ev.OUTPUT_FIELDS
    assert ev.API_VERSION == 3
    old = ["ms", "ms_iso", "delta_iso", "ms_l2", "ms_zeta", "ms_eta", "efg", "efg_l2", "vzz", "eta_q", "cq", "ood",
           "ood_residual"]
    assert [fields[name][0] for name in old] == [0, 9, 10, 11, 16, 17, 18, 27, 32, 33, 34, 35, 36]
    api_2 = ["ms_iso_std", "ms_l2_std", "efg_l2_std", "vzz_std", "cq_std", "pq_std", "vzz_axis_flag"]
    assert [fields[name][0] for name in api_2] == [37, 38, 43, 48, 49, 50, 51]   # unchanged by API 3
    assert fields["ms_l1_std"] == (52, 3, "ppm") and ev.WIDTH == 55               # API 3: σ(1) at the end
    new = sorted((offset, width, name) for name, (offset, width, _) in fields.items() if name not in old)
    assert new[0][0] == 37
    for (offset, width, _), (following, _, _) in zip(new, new[1:] + [(ev.WIDTH, 0, "")]):
        assert offset + width == following  # contiguous, after the old fields, up to WIDTH


def test_calculator_and_csv_carry_the_uncertainties(trained, tmp_path):
    import csv

    from ase_mlnmr.calculator import NMRCalculator
    from ase_mlnmr.cli import predict_structures

    data, model = trained
    atoms = data.structures[2].copy()
    prediction = model.predict(atoms)
    atoms.calc = NMRCalculator(model)
    np.testing.assert_array_equal(atoms.calc.get_property("ms_iso_std", atoms), prediction.ms_iso_std)
    np.testing.assert_array_equal(atoms.calc.get_property("cq_std", atoms), prediction.cq_std)
    np.testing.assert_array_equal(atoms.calc.get_property("efg_std", atoms), prediction.efg_std)
    np.testing.assert_array_equal(atoms.calc.get_property("ms_aniso_std", atoms), prediction.ms_aniso_std)
    assert np.isfinite(prediction.ms_aniso_std[np.array(atoms.get_chemical_symbols()) == "Si"]).all()
    assert "ms_antisym_std" not in atoms.calc.results     # no σ(1) model in CONFIG
    predict_structures(model, [data.structures[2]], ["s2"], tmp_path, "extxyz", "raise", quiet=True)
    with open(tmp_path / "predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    symbols = data.structures[2].get_chemical_symbols()
    for row in rows:
        i = int(row["index"])
        if symbols[i] == "Si":
            assert float(row["sigma_iso_std_ppm"]) == pytest.approx(prediction.ms_iso_std[i], rel=1e-5)
            assert row["cq_std_MHz"] == ""
        else:
            assert float(row["cq_std_MHz"]) == pytest.approx(prediction.cq_std[i], rel=1e-5)
            assert float(row["pq_std_MHz"]) == pytest.approx(prediction.pq_std[i], rel=1e-5)
            assert row["vzz_axis_flag"] in ("0", "1")


def test_members_closed_form_eigenvalues_match_numpy_and_keep_vzz_exact_at_degeneracy():
    """The members' closed-form EFG eigenvalues against np.linalg.eigvalsh: generic tensors
    to 1e-13 ‖t‖; axial tensors (a degenerate pair, η = 0), η = 1 and the zero tensor, each
    turned by random rotations: the value set apart (Vzz) to 1e-13 ‖t‖, the pair to 1e-6 ‖t‖,
    and the same whatever the rotation (an invariant)."""
    from scipy.spatial.transform import Rotation

    from ase_mlnmr.core._evaluator import _closed_form_eigenvalues

    rng = np.random.default_rng(3)
    for _ in range(200):
        a = rng.normal(size=(3, 3)) * rng.uniform(1e-4, 1e2)
        t = a + a.T
        norm = np.linalg.norm(t)
        np.testing.assert_allclose(_closed_form_eigenvalues(t), np.linalg.eigvalsh(t), rtol=0, atol=1e-13 * norm)
    for diagonal in ([1.0, 1.0, -2.0], [-3e-3, -3e-3, 6e-3], [0.0, 1.0, -1.0], [0.0, 0.0, 0.0], [2.0, 2.0, 2.0]):
        diagonal = np.array(diagonal)
        apart = np.argmax(np.abs(diagonal - diagonal.mean()))
        scale = max(np.linalg.norm(diagonal), 1e-300)
        for rotation in Rotation.random(20, random_state=4).as_matrix():
            values = _closed_form_eigenvalues(rotation @ np.diag(diagonal) @ rotation.T)
            expected = np.sort(diagonal)
            np.testing.assert_allclose(values, expected, rtol=0, atol=1e-6 * scale)
            vzz = values[np.argmax(np.abs(values - values.mean()))]
            assert abs(abs(vzz) - abs(diagonal[apart])) <= 1e-13 * scale
