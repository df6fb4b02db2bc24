"""ASE provider: properties, caching through check_state, magres and extxyz round trips
(read back by ASE and by Soprano), species the model does not know."""
from __future__ import annotations

import numpy as np
import pytest
from ase.calculators.calculator import CalculatorSetupError, PropertyNotImplementedError
from ase.io import read, write

from ase_mlnmr.calculator import NMRCalculator, attach_nmr_tensors, prediction_table, write_extxyz_arrays
from ase_mlnmr.nmr import quadrupolar_parameters
from ase_mlnmr.nmr_model import NMRModel, UnknownSpeciesError

from conftest import random_structure
from synthetic_data import synthetic_dataset

CONFIG = {
    "descriptor": {"r_cut": 4.5, "n_max": 4, "l_max": 3, "sigma": 0.4},
    "ms_iso": {"n_inducing": 150},
    "ood": {"n_inducing": 100},
    "calibration": {"Si": {"slope": 1.0, "sigma_ref": 320.0}},
}


@pytest.fixture(scope="module")
def model():
    data = synthetic_dataset(n_structures=6, n_atoms=24, seed=10)
    return NMRModel.train(data, CONFIG, progress=False)


@pytest.fixture
def atoms():
    return random_structure(24, symbols=("Si", "O", "O"), seed=77, min_distance=1.5)


def test_properties_and_caching(model, atoms):
    calc = NMRCalculator(model)
    atoms.calc = calc
    calls = []
    original = model.predict

    def counting_predict(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    model.predict = counting_predict
    try:
        ms = atoms.calc.get_property("ms", atoms)
        efg = atoms.calc.get_property("efg", atoms)
        cq = atoms.calc.get_property("cq", atoms)
        assert len(calls) == 1  # one prediction serves every property
        atoms.calc.get_property("ms_iso", atoms)
        assert len(calls) == 1
        atoms.positions[0] += 0.05
        atoms.calc.get_property("ms", atoms)
        assert len(calls) == 2  # moved atom: check_state drops the cache
        atoms.arrays["ms"] = np.zeros((len(atoms), 3, 3))  # tensors on atoms.arrays do not
        atoms.calc.get_property("ms", atoms)
        assert len(calls) == 2
    finally:
        model.predict = original
    assert ms.shape == (len(atoms), 3, 3) and efg.shape == (len(atoms), 3, 3)
    symbols = atoms.get_chemical_symbols()
    o = np.array(symbols) == "O"
    expected_cq = quadrupolar_parameters(efg[o], "17O", units="au")[0]
    np.testing.assert_allclose(cq[o], expected_cq)
    assert np.isnan(cq[~o]).all()  # 29Si has no quadrupole moment
    delta = atoms.calc.get_property("delta_iso", atoms)
    si = ~o
    np.testing.assert_allclose(delta[si], -(np.trace(atoms.calc.results["ms"][si], axis1=1, axis2=2) / 3 - 320.0))
    assert np.isnan(delta[o]).all()


def test_missing_property_and_bad_setup(atoms, tmp_path):
    data = synthetic_dataset(n_structures=3, n_atoms=20, seed=1)
    efg_only = NMRModel.train(data, {**CONFIG, "species": {"O": {"properties": ["efg"]}, "Si": {"properties": ["efg"]}}},
                              progress=False)
    atoms.calc = NMRCalculator(efg_only)
    assert atoms.calc.get_property("efg", atoms).shape == (len(atoms), 3, 3)
    with pytest.raises(PropertyNotImplementedError):
        atoms.calc.get_property("ms", atoms)
    with pytest.raises(CalculatorSetupError, match="unknown_species"):
        NMRCalculator(efg_only, unknown_species="ignore")
    path = efg_only.save(tmp_path / "efg.npz")
    assert isinstance(NMRCalculator(path).model, NMRModel)


def test_magres_round_trip_read_by_ase_and_soprano(model, atoms, tmp_path):
    prediction = attach_nmr_tensors(atoms, model)
    path = tmp_path / "predicted.magres"
    write(path, atoms)
    back = read(path)
    assert back.info["magres_units"]["ms"] == "ppm" and back.info["magres_units"]["efg"] == "au"
    np.testing.assert_allclose(back.arrays["ms"], prediction.ms, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(back.arrays["efg"], prediction.efg, rtol=1e-6, atol=1e-9)
    soprano_nmr = pytest.importorskip("soprano.properties.nmr")
    iso = soprano_nmr.MSIsotropy.get(back)
    np.testing.assert_allclose(iso, prediction.ms_iso, rtol=1e-6)
    eta = soprano_nmr.EFGAsymmetry.get(back)
    assert np.all((eta >= -1e-9) & (eta <= 1 + 1e-9))


def test_unpredicted_atoms_are_left_out_of_magres_blocks(tmp_path):
    data = synthetic_dataset(n_structures=3, n_atoms=24, seed=20, symbols=("Si", "O", "Na"), mask_species="Na")
    model = NMRModel.train(data, {**CONFIG, "ms_iso": {"regressor": "linear", "alpha": 1e-3}}, progress=False)
    atoms = random_structure(24, symbols=("Si", "O", "Na"), seed=21, min_distance=1.5)
    with pytest.raises(UnknownSpeciesError):
        attach_nmr_tensors(atoms, model)
    prediction = attach_nmr_tensors(atoms, model, unknown_species="skip")
    path = tmp_path / "mixed.magres"
    write(path, atoms)
    text = path.read_text()
    assert "nan" not in text.lower()
    ms_lines = [line for line in text.splitlines() if line.strip().startswith("ms ")]
    assert len(ms_lines) == int(prediction.ms_mask.sum()) and not any(" Na " in line for line in ms_lines)
    na = np.array(atoms.get_chemical_symbols()) == "Na"
    # (ASE 3.29's magres reader cannot read blocks with missing atoms back under NumPy 2:
    # it builds an inhomogeneous array; the file itself is valid magres.)
    labelled = {(line.split()[1], int(line.split()[2])) for line in ms_lines}
    assert len(labelled) == int((~na).sum()) and all(label != "Na" for label, _ in labelled)
    rows = prediction_table(atoms, prediction)
    assert len(rows) == int((~na).sum()) and all(r["element"] != "Na" for r in rows)
    # extended XYZ: 9 numbers per atom, row-major, with a mask, never NaN
    xyz = tmp_path / "mixed.extxyz"
    write(xyz, write_extxyz_arrays(atoms, prediction))
    again = read(xyz)
    assert np.all(np.isfinite(again.arrays["ms"]))
    np.testing.assert_array_equal(again.arrays["ms_mask"], ~na)
    np.testing.assert_allclose(again.arrays["ms"][~na].reshape(-1, 3, 3), prediction.ms[~na], atol=1e-6)  # 8 decimals in the file
